package main

// usageText and examplesText frame the flags in the attack's -h.
const usageText = `usage: httpfutures [flags] [URL...]
       httpfutures report [-type text|json|hist[...]|hdrplot] [-output FILE] [-threshold ...] [FILE...]
       httpfutures plot [-title T] [-output FILE] [FILE...]
       httpfutures tour

Sends HTTP requests to each URL in turn (or to the targets of -targets)
through an httpfutures.AsyncTransport and reports latency percentiles, status
codes and errors. Without a URL it runs a short demo against an embedded
server on 127.0.0.1; "httpfutures tour" shows the library itself at work.

With -rate the load is an open model: requests fall due on a timetable (a
constant rate, steps or ramps) and each one's latency runs from its due time
to the end of its response body, so a stalled server shows in the
percentiles. The send lag (sent - due) is reported apart. The run ends at
-duration: what fell due and was not sent by then is reported as dropped,
never sent late. Without -rate, -c workers send as fast as the server answers
and latency runs from when a request was queued.

-output FILE keeps one result per request in vegeta's JSON results format
(CSV for a name ending in .csv; -o csv writes them to stdout, as hey's);
"httpfutures report" and "httpfutures plot" (and vegeta's) read both. A
response that is not a 2xx or 3xx has its status line as its error, as in
vegeta's results.

Each flag ends with whose convention it follows: [hey] or [vegeta], which it
means the same as there, or [httpfutures], its own. -o is the output type
everywhere (hey's -o csv); a file to write is -output (vegeta's).

Exit status: 0; 1 when nothing was sent or no request succeeded (no 2xx or
3xx response); 2 for bad usage; 3 when a -threshold was missed.

Ctrl-C, like the end of -duration, stops sending in either model: requests not
sent yet count as dropped, those in flight get at most -timeout and a second
more, and the report is printed; a second Ctrl-C ends the program at once.

flags:
`

const examplesText = `
examples:
  httpfutures                                      # demo against an embedded server
  httpfutures -n 20000 -c 8 http://127.0.0.1:8080/get
  httpfutures -rate 5000 -duration 30s -o json http://127.0.0.1:8080/get
  httpfutures -rate 50/1s -duration 1m -prometheus 127.0.0.1:9100 'http://127.0.0.1:8080/item/{{rand 1000}}'
  httpfutures -unix-socket /run/app.sock -max-connections 4 -n 10000 http://app/health
  httpfutures -rate 100:2000 -duration 1m -output results.json http://127.0.0.1:8080/get
  httpfutures -rate 100@10s,1000@20s,0:500@30s -targets targets.txt
  httpfutures -threshold 'p99<50ms,success>=99.9%' -rate 500 -duration 10s http://127.0.0.1:8080/get
  httpfutures report -type 'hist[0,1ms,5ms,20ms]' results.json
  httpfutures plot -output plot.html a.json b.json
  httpfutures tour
`
