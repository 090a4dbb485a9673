package loadgen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A urlTemplate is a URL with placeholders: {{seq}}, the request's number from 0, and
// {{rand N}}, a random integer from 0 to N-1, as oha's random URLs and vegeta's lazy targets
// give URLs that differ from request to request. It is made by parseURLTemplate.
type urlTemplate struct {
	parts []urlPart
	size  int // the literal text's length, to size the result
}

// urlPart is literal text, or a placeholder: seq, or rand below n.
type urlPart struct {
	text string
	seq  bool
	n    uint64 // rand: below n; 0: not rand
}

// parseURLTemplate compiles the placeholders of raw; it returns nil if there is none.
func parseURLTemplate(raw string) (*urlTemplate, error) {
	if !strings.Contains(raw, "{{") {
		if strings.Contains(raw, "}}") {
			return nil, errors.New(`"}}" without "{{"`)
		}
		return nil, nil
	}
	t := &urlTemplate{}
	rest := raw
	for rest != "" {
		before, after, found := strings.Cut(rest, "{{")
		if strings.Contains(before, "}}") {
			return nil, errors.New(`"}}" without "{{"`)
		}
		if before != "" {
			t.parts = append(t.parts, urlPart{text: before})
			t.size += len(before)
		}
		if !found {
			break
		}
		inner, tail, closed := strings.Cut(after, "}}")
		if !closed {
			return nil, errors.New(`"{{" without "}}"`)
		}
		p, err := parsePlaceholder(strings.TrimSpace(inner))
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, p)
		rest = tail
	}
	return t, nil
}

func parsePlaceholder(s string) (urlPart, error) {
	fields := strings.Fields(s)
	switch {
	case len(fields) == 1 && fields[0] == "seq":
		return urlPart{seq: true}, nil
	case len(fields) == 2 && fields[0] == "rand":
		n, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil || n == 0 {
			return urlPart{}, fmt.Errorf("{{%s}}: N must be a positive integer", s)
		}
		return urlPart{n: n}, nil
	}
	return urlPart{}, fmt.Errorf("unknown placeholder {{%s}}: {{seq}} or {{rand N}}", s)
}

// fill returns the URL of request seq, with randBelow(n) for each {{rand n}}.
func (t *urlTemplate) fill(seq uint64, randBelow func(n uint64) uint64) string {
	var b strings.Builder
	b.Grow(t.size + 20*len(t.parts))
	for _, p := range t.parts {
		switch {
		case p.seq:
			b.WriteString(strconv.FormatUint(seq, 10))
		case p.n > 0:
			b.WriteString(strconv.FormatUint(randBelow(p.n), 10))
		default:
			b.WriteString(p.text)
		}
	}
	return b.String()
}
