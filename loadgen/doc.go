// Package loadgen is the engine of the httpfutures load generator (cmd/httpfutures), for a Go
// program that runs an attack and reads its figures without the command line, as vegeta's lib
// is to vegeta.
//
// An attack is a Config: its Targets, and either the closed model (Workers users, each with
// one request in flight, as hey) or the open model (a Rate: requests fall due on a timetable,
// a constant rate, steps or ramps, whatever the server does, as vegeta and wrk2). New makes an
// Attacker of it, and Run sends the requests and returns a Report: latency percentiles from
// HdrHistogram, status codes, errors by kind, and for the open model how well the timetable was
// kept (the send lag, and what fell due and was not sent). Every request goes through an
// httpfutures.AsyncTransport.
//
// In the open model a request's latency runs from its due time, not from when it was sent, so
// that a stalled server shows in every request that fell due meanwhile (no coordinated
// omission); the send lag is reported apart, so that a late generator is not taken for a slow
// server. A Report's rates are what was sent; what was asked is beside them.
//
// Results, one per request, are written by a ResultWriter in vegeta's JSON or CSV results
// formats and read back by ReadResults (vegeta's files too); Metrics makes a Report of them.
package loadgen
