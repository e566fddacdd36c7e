package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// startMessages are the log messages with which the processes say they
// serve: a service's (servicehost), the order service's and the console's.
var startMessages = map[string]bool{
	"service started":       true,
	"order service started": true,
	"console listening":     true,
}

// upWatch reads the processes' output for their start lines and tells,
// once, when every process has said it serves, with the addresses they
// gave: the terminal otherwise shows only their JSON logs, and a newcomer
// cannot tell when to place the first order. It also notes a process that
// could not bind its address, the usual reason for a second run to fail.
// It is safe for concurrent use.
type upWatch struct {
	began time.Time
	names []string // in start order

	mu        sync.Mutex
	addrs     map[string]string // what each process said it serves at
	told      bool
	portTaken map[string]bool
}

func newUpWatch(names []string, began time.Time) *upWatch {
	return &upWatch{began: began, names: names, addrs: map[string]string{}, portTaken: map[string]bool{}}
}

// line notes a line of name's output. It returns the announcement when the
// line is the last process's start line, the first time all are up;
// otherwise "".
func (u *upWatch) line(name string, line []byte, now time.Time) string {
	if strings.Contains(string(line), "address already in use") {
		u.mu.Lock()
		u.portTaken[name] = true
		u.mu.Unlock()
	}
	rec, ok := parseStartLine(line)
	if !ok {
		return ""
	}
	addr := rec.URL
	switch {
	case rec.HTTP != "" && rec.Admin != "" && rec.Admin != "off":
		addr = rec.HTTP + " (admin " + rec.Admin + ")"
	case rec.HTTP != "":
		addr = rec.HTTP
	case rec.Admin != "":
		addr = rec.Admin
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.addrs[name] = addr
	if u.told || len(u.addrs) < len(u.names) {
		return ""
	}
	u.told = true
	parts := make([]string, 0, len(u.names))
	for _, n := range u.names {
		parts = append(parts, n+" "+u.addrs[n])
	}
	return fmt.Sprintf("devrun: all %d processes up after %s: %s. Ctrl-C stops them all.",
		len(u.names), now.Sub(u.began).Round(10*time.Millisecond), strings.Join(parts, ", "))
}

// started notes that name was (re)started: what its earlier runs said of
// their address no longer counts.
func (u *upWatch) started(name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.portTaken, name)
}

// startLine is what a start line says.
type startLine struct {
	Msg   string `json:"msg"`
	HTTP  string `json:"http"`
	Admin string `json:"admin"`
	URL   string `json:"url"`
}

// textField matches a key=value pair of log/slog's text format whose
// value has no quotes.
var textField = regexp.MustCompile(`(?:^| )(msg|http|admin|url)=("[^"]*"|\S+)`)

// parseStartLine reads a start line in either of log/slog's formats (the
// services log JSON, the console text); ok is false for any other line.
func parseStartLine(line []byte) (rec startLine, ok bool) {
	if len(line) > 0 && line[0] == '{' {
		if json.Unmarshal(line, &rec) != nil {
			return startLine{}, false
		}
		return rec, startMessages[rec.Msg]
	}
	for _, m := range textField.FindAllSubmatch(line, -1) {
		v := string(m[2])
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		switch string(m[1]) {
		case "msg":
			rec.Msg = v
		case "http":
			rec.HTTP = v
		case "admin":
			rec.Admin = v
		case "url":
			rec.URL = v
		}
	}
	return rec, startMessages[rec.Msg]
}

// tookPort reports whether name's output, since its last start, said an
// address was in use.
func (u *upWatch) tookPort(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.portTaken[name]
}
