package clienttest

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/postfach/postfach/internal/corpus"
)

//go:embed scripts
var scriptFS embed.FS

// ClientCorpus is what the real-client runs expect in the account before
// they start: INBOX with corpus messages 0-7 and sessions/messages/
// nested.eml (a message/rfc822 part and an attachment), Archive with
// corpus messages 8-9, "Lists/Go" with 10, "Entwürfe" with 11. Seed it
// with Seed, or upstream of the target.
func ClientCorpus() []corpus.Message {
	var msgs []corpus.Message
	for i := range 12 {
		m := CorpusMessage(i)
		switch {
		case i < 8:
			m.Folder = "INBOX"
		case i < 10:
			m.Folder = "Archive"
		case i == 10:
			m.Folder = "Lists/Go"
		default:
			m.Folder = "Entwürfe"
		}
		msgs = append(msgs, m)
	}
	nested, err := Message("nested.eml")
	if err != nil {
		panic(err)
	}
	return append(msgs, corpus.Message{Folder: "INBOX", Date: FileDate, Raw: nested})
}

// AppendedMessage is the message the imaplib run APPENDs (twice, and once
// more from a second connection during IDLE).
func AppendedMessage() []byte { return CorpusMessage(20).Raw }

// ClientStep is one command a real client ran and what it returned.
type ClientStep struct {
	Name   string // e.g. "fetch (UID BODY.PEEK[])", "search FROM \"example\""
	Kind   string // how Data reads: fetch, search, number, numbers, text, list, lines, untagged-*, error
	Typ    string // imaplib's status: OK, NO, BAD
	Data   [][]byte
	Normal []string // Data normalised (see normalize.go)
}

// IMAPLibRun is what Python's imaplib saw in RunIMAPLib.
type IMAPLibRun struct {
	Steps []ClientStep
	Err   string // the exception that stopped the script, if any
}

// RunIMAPLib runs the embedded imaplib script against t: SELECT; FETCH of
// every part kind; SEARCH with header, date, flag and text keys; STORE;
// APPEND; COPY; MOVE; EXPUNGE; IDLE (with a second connection
// appending); then the state of INBOX and Archive. The account must hold
// ClientCorpus. Python's imaplib parses the responses; what it returned is
// recorded per command.
func RunIMAPLib(ctx context.Context, t Target) (*IMAPLibRun, error) {
	out, err := runPython(ctx, "imaplib_session.py", t, t.IMAP, map[string]any{"eml": base64.StdEncoding.EncodeToString(AppendedMessage())})
	if err != nil {
		return nil, err
	}
	var raw []struct {
		Name, Kind, Typ string
		Data            []*struct {
			B *string  `json:"b"`
			T []string `json:"t"`
		}
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("clienttest: imaplib output: %w", err)
	}
	run := &IMAPLibRun{}
	for _, s := range raw {
		st := ClientStep{Name: s.Name, Kind: s.Kind, Typ: s.Typ}
		for _, d := range s.Data {
			switch {
			case d == nil:
			case d.B != nil:
				b, _ := base64.StdEncoding.DecodeString(*d.B)
				st.Data = append(st.Data, b)
			case len(d.T) == 2:
				p, _ := base64.StdEncoding.DecodeString(d.T[0])
				l, _ := base64.StdEncoding.DecodeString(d.T[1])
				st.Data = append(st.Data, append(append(p, "\r\n"...), l...))
			}
		}
		if s.Kind == "error" {
			run.Err = s.Typ + ": " + string(bytes.Join(st.Data, nil))
		}
		st.Normal = normalizeClientStep(st)
		run.Steps = append(run.Steps, st)
	}
	return run, nil
}

// runPython runs an embedded script with the target's connection settings
// (plus extra) as JSON on stdin and returns its stdout.
func runPython(ctx context.Context, script string, t Target, addr string, extra map[string]any) ([]byte, error) {
	src, err := scriptFS.ReadFile("scripts/" + script)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "clienttest-py-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, script)
	if err := os.WriteFile(path, src, 0o644); err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("clienttest: address %q: %w", addr, err)
	}
	p, _ := strconv.Atoi(port)
	cfg := map[string]any{"host": host, "port": p, "user": t.User, "pass": t.Pass,
		"tls": [...]string{"none", "starttls", "implicit"}[t.TLS], "cafile": t.CAFile, "servername": t.ServerName}
	for k, v := range extra {
		cfg[k] = v
	}
	in, _ := json.Marshal(cfg)
	py, err := python()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, py, path)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("clienttest: python3 %s: %v: %s", script, err, stderr.String())
	}
	return out, nil
}

var (
	pythonOnce sync.Once
	pythonPath string
	pythonErr  error
)

// python returns the python3 interpreter itself: a version manager's shim
// (pyenv) found first in $PATH costs seconds per start on a loaded machine.
func python() (string, error) {
	pythonOnce.Do(func() {
		if pythonPath, pythonErr = exec.LookPath("python3"); pythonErr != nil {
			pythonErr = fmt.Errorf("clienttest: python3: %w", pythonErr)
			return
		}
		out, err := exec.Command(pythonPath, "-c", "import sys; print(sys.executable)").Output()
		if p := strings.TrimSpace(string(out)); err == nil && p != "" {
			pythonPath = p
		}
	})
	return pythonPath, pythonErr
}

// normalizeClientStep turns what imaplib returned back into response
// lines and normalises them like the raw sessions.
func normalizeClientStep(st ClientStep) []string {
	out := []string{"status " + st.Typ}
	switch st.Kind {
	case "fetch":
		for _, r := range splitFetch(bytes.Join(st.Data, nil)) {
			out = append(out, "* "+r.seq+" FETCH "+normalizeFetch(r.items))
		}
	case "search":
		for _, d := range st.Data {
			toks, _ := tokenizeAll(d)
			out = append(out, "* SEARCH "+renderNumbers(toks))
		}
	case "text":
		for _, d := range st.Data {
			if n, ok := normalizeStatus("x", st.Typ, string(d)); ok {
				out = append(out, n.text)
			}
		}
	case "list":
		for _, d := range st.Data {
			word := "LIST"
			if strings.HasPrefix(st.Name, "status") {
				word = "STATUS"
			}
			if n, ok := normalize(append([]byte("* "+word+" "), d...)); ok {
				out = append(out, n.text)
			}
		}
		sort.Strings(out[1:])
	case "lines":
		out = append(out, normalizeResponses(st.Data, false)...)
	default: // number, numbers, untagged-*, error
		var ds []string
		for _, d := range st.Data {
			ds = append(ds, string(d))
		}
		if st.Name == "expunge" {
			ds = originalExpunges(ds) // any order of the same EXPUNGEs (events.go)
		}
		out = append(out, ds...)
	}
	return out
}

type fetchResp struct{ seq, items string }

// splitFetch splits imaplib's FETCH data, joined ("1 (UID 1 BODY[]
// {3}\r\nabc)2 (...)"), into responses.
func splitFetch(b []byte) []fetchResp {
	z := &tokenizer{b: b}
	var out []fetchResp
	for !z.eof() {
		seq, err := z.next()
		if err != nil {
			return append(out, fetchResp{"?", string(b[z.pos:])})
		}
		start := z.pos
		if _, err := z.next(); err != nil {
			return append(out, fetchResp{seq.s, string(b[start:])})
		}
		out = append(out, fetchResp{seq.s, strings.TrimSpace(string(b[start:z.pos]))})
	}
	return out
}

// Step returns the step named name, or nil.
func (r *IMAPLibRun) Step(name string) *ClientStep {
	for i := range r.Steps {
		if r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	return nil
}

// Items returns, per UID, the raw value of item (e.g. "BODY[]",
// "BODY[HEADER]") in a fetch step.
func (s *ClientStep) Items(item string) map[string][]byte {
	out := map[string][]byte{}
	for _, r := range splitFetch(bytes.Join(s.Data, nil)) {
		toks, err := tokenizeAll([]byte(r.items))
		if err != nil || len(toks) != 1 {
			continue
		}
		var uid string
		var val []byte
		found := false
		l := toks[0].list
		for i := 0; i+1 < len(l); i += 2 {
			switch k := strings.ToUpper(l[i].s); {
			case k == "UID":
				uid = l[i+1].s
			case k == strings.ToUpper(item):
				val, found = []byte(l[i+1].s), true
			}
		}
		if found {
			out[uid] = val
		}
	}
	return out
}

// CompareClientSteps returns, for each step whose normalised result differs
// between ref and got, a description (a step opts lists as a known defect
// is left out while it differs, and described when it no longer does). As in Compare, the reference may
// send UID anywhere in a FETCH response, the target must send it first.
func CompareClientSteps(ref, got []ClientStep, opts *Options) []string {
	var out []string
	for i := range max(len(ref), len(got)) {
		var a, b ClientStep
		if i < len(ref) {
			a = ref[i]
			a.Normal = append([]string(nil), a.Normal...)
			for j, l := range a.Normal {
				a.Normal[j] = strings.Replace(l, " UID-NOT-FIRST", "", 1)
			}
		}
		if i < len(got) {
			b = got[i]
		}
		if opts != nil && i < len(got) {
			b.Normal = opts.accept("x "+b.Name, false, a.Normal, b.Normal)
		}
		differs := a.Name != b.Name || !equalLines(a.Normal, b.Normal)
		if _, known := opts.knownDefect("imaplib/" + b.Name); known && a.Name == b.Name {
			if !differs {
				out = append(out, fmt.Sprintf("step %d %q is listed as a known defect but answers as the reference now: take it off KnownDefects", i, b.Name))
			}
			continue
		}
		if differs {
			out = append(out, fmt.Sprintf("step %d %q/%q:\n  reference: %s\n  target:    %s", i, a.Name, b.Name,
				strings.Join(a.Normal, "\n             "), strings.Join(b.Normal, "\n             ")))
		}
	}
	return out
}
