// A local HTTP provider for bench/inserver.sh: answers every request at once with 200 and `{}`.
// Prints "listening on 127.0.0.1:PORT" once it listens; counts requests (printed on SIGTERM).
import http from 'node:http';

let requests = 0;
const srv = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    requests++;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '2' });
    res.end('{}');
  });
});
srv.keepAliveTimeout = 60_000;
srv.listen(0, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${srv.address().port}`);
});
process.on('SIGTERM', () => {
  console.log(`requests: ${requests}`);
  process.exit(0);
});
