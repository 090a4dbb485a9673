package otelfutures

// Pending returns how many spans t keeps: those of Futures not yet resolved.
func Pending(t *Telemetry) int {
	if t.traces == nil {
		return 0
	}
	n := 0
	t.traces.spans.Range(func(any, any) bool { n++; return true })
	return n
}

// Schedulers returns how many Schedulers t reads gauges from.
func Schedulers(t *Telemetry) int { return len(t.metrics.schedulers()) }
