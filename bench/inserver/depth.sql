SELECT jobq.depth('default');
