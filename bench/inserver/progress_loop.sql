-- progress events from an external worker: one jobq.progress() per transaction on a job it holds
-- (JOB_ID is replaced by bench/inserver.sh)
\set p random(0, 100)
SELECT jobq.progress('JOB_ID', :p, 'step');
