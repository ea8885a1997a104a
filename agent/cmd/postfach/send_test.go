package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/configs"
)

// TestSendArgs: sendmail's command lines as mail programs write them
// (mutt, git send-email, cron, aerc) parse into the same options; options
// that take no part in queueing are accepted and ignored; unknown ones and
// missing values are usage errors.
func TestSendArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want sendOptions
	}{
		{[]string{"-t"}, sendOptions{headerRcpts: true}},
		{[]string{"-oem", "-oi", "--", "a@example.org", "-b@example.org"}, // mutt
			sendOptions{ignoreDots: true, rcpts: []string{"a@example.org", "-b@example.org"}}},
		{[]string{"-i", "-f", "me@example.org", "a@example.org", "b@example.org"}, // git send-email
			sendOptions{ignoreDots: true, from: "me@example.org", rcpts: []string{"a@example.org", "b@example.org"}}},
		{[]string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"}, // cron
			sendOptions{ignoreDots: true, fullName: "CronDaemon", rcpts: []string{"root"}}},
		{[]string{"-ti", "-fme@example.org", "-F", "Me Myself"},
			sendOptions{headerRcpts: true, ignoreDots: true, from: "me@example.org", fullName: "Me Myself"}},
		{[]string{"-r", "<me@example.org>", "-odi", "-oep", "-em", "-U", "-v", "-n", "-m", "-G", "a@example.org"},
			sendOptions{from: "me@example.org", verbose: true, rcpts: []string{"a@example.org"}}},
		{[]string{"-B", "8BITMIME", "-N", "never", "-R", "hdrs", "-V", "envid", "-X", "/tmp/log", "-L", "tag",
			"-h", "5", "-p", "smtp", "-O", "DeliveryMode=b", "-Am", "-d0.1", "-bm", "-o", "i", "a@example.org"},
			sendOptions{ignoreDots: true, rcpts: []string{"a@example.org"}}},
		{[]string{"--config", "/etc/c.toml", "-t"}, sendOptions{config: "/etc/c.toml", headerRcpts: true}},
		{[]string{"-c", "c.toml", "--config=d.toml", "--verbose"}, sendOptions{config: "d.toml", verbose: true}},
		{[]string{"a@example.org", "-i", "b@example.org"}, sendOptions{ignoreDots: true, rcpts: []string{"a@example.org", "b@example.org"}}},
		{[]string{"--help"}, sendOptions{help: true}},
		{[]string{"--cpuprofile", "p.out", "--cpuprofile=q.out", "a@example.org"}, sendOptions{cpuProfile: "q.out", rcpts: []string{"a@example.org"}}},
	} {
		got, err := parseSendArgs(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.args, *got, tc.want)
		}
	}
	for _, args := range [][]string{
		{"-q"}, {"-bp"}, {"-bs"}, {"-f"}, {"-F"}, {"-x", "a@example.org"}, {"--bogus"}, {"-tZ"}, {"--config"}, {"-B"},
	} {
		if _, err := parseSendArgs(args); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// sendConfig loads a config with two accounts that send mail and one that
// does not (their addresses: the user names, by default).
func sendConfig(t *testing.T) *configs.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("[store]\npath = \"store\"\n")
	for _, a := range [][2]string{{"work", "me@work.example"}, {"home", "me@home.example"}, {"news", "reader@news.example"}} {
		fmt.Fprintf(&b, "\n[[accounts]]\nname = %q\nkind = \"imap\"\nhost = \"imap.example.org\"\nusername = %q\npassword = \"secret\"\n", a[0], a[1])
		if a[0] != "news" {
			b.WriteString("\n  [accounts.smtp]\n  host = \"smtp.example.org\"\n")
		}
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCommandName: the command lines that run send (which builds its
// command alone) and those that do not.
func TestCommandName(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"send", "-t"}, true},
		{[]string{"--config", "send", "send"}, true},
		{[]string{"-c", "x.toml", "-v", "send", "a@example.org"}, true},
		{[]string{"--config=x.toml", "--cpuprofile", "p", "send"}, true},
		{[]string{"--verbose", "send"}, true},
		{[]string{"--trace", "t.out", "--memprofile=m", "send"}, true},
		{[]string{"sync", "send"}, false},
		{[]string{"help", "send"}, false},
		{[]string{"--config", "send"}, false},
		{[]string{"--help"}, false},
		{nil, false},
	} {
		if got := commandName(c.args) == "send"; got != c.want {
			t.Errorf("commandName(%q) = %q, want send: %v", c.args, commandName(c.args), c.want)
		}
	}
}

// TestSendPrepare: the envelope and the stored message. -t takes To, Cc
// and Bcc and merges the arguments (each address once); without -t only
// the arguments count. Bcc never reaches the stored message. -f, else the
// From field, chooses the account; From (with -F's name), Date and
// Message-ID are added only when missing; line ends become CRLF.
func TestSendPrepare(t *testing.T) {
	cfg := sendConfig(t)
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	msg := "From: Me <me@home.example>\nTo: A <a@example.org>, b@example.org\nCc: c@example.org\nBcc: secret@example.org,\n hidden@example.org\n" +
		"Subject: hello\nDate: Fri, 4 Dec 2026 10:00:00 +0000\nMessage-ID: <1@home.example>\n\nbody\nBcc: stays in the body\n"
	p, err := prepareMessage(cfg, &sendOptions{headerRcpts: true, rcpts: []string{"B@example.org", "d@example.org"}}, []byte(msg), now)
	if err != nil {
		t.Fatal(err)
	}
	if p.account != "home" || p.env.From != "me@home.example" {
		t.Errorf("account %q, envelope sender %q", p.account, p.env.From)
	}
	wantTo := []string{"a@example.org", "b@example.org", "c@example.org", "secret@example.org", "hidden@example.org", "d@example.org"}
	if !reflect.DeepEqual(p.env.To, wantTo) {
		t.Errorf("recipients %q\nwant %q", p.env.To, wantTo)
	}
	wantData := "From: Me <me@home.example>\r\nTo: A <a@example.org>, b@example.org\r\nCc: c@example.org\r\n" +
		"Subject: hello\r\nDate: Fri, 4 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@home.example>\r\n\r\nbody\r\nBcc: stays in the body\r\n"
	if string(p.data) != wantData {
		t.Errorf("stored message:\n%q\nwant\n%q", p.data, wantData)
	}

	// Without -t: the arguments only; -f chooses the account and the
	// envelope sender over the From field.
	p, err = prepareMessage(cfg, &sendOptions{from: "ME@work.example", rcpts: []string{"Z <z@example.org>, y@example.org", "root"}}, []byte(msg), now)
	if err != nil {
		t.Fatal(err)
	}
	if p.account != "work" || p.env.From != "ME@work.example" || !reflect.DeepEqual(p.env.To, []string{"z@example.org", "y@example.org", "root"}) {
		t.Errorf("-f: account %q, envelope %+v", p.account, p.env)
	}
	if bytes.Contains(p.data, []byte("secret@")) {
		t.Errorf("Bcc stored:\n%s", p.data)
	}

	// Missing From, Date, Message-ID are added, From with -F's name.
	p, err = prepareMessage(cfg, &sendOptions{from: "me@work.example", fullName: "Jörg Me", rcpts: []string{"a@example.org"}}, []byte("Subject: x\n\nbody\n"), now)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(p.data), "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	if len(lines) != 4 || lines[0] != "From: =?utf-8?q?J=C3=B6rg_Me?= <me@work.example>" || lines[1] != "Date: Sat, 05 Dec 2026 12:00:00 +0000" ||
		!strings.HasPrefix(lines[2], "Message-ID: <") || !strings.HasSuffix(lines[2], "@work.example>") || lines[3] != "Subject: x" {
		t.Errorf("added fields:\n%s", head)
	}

	for _, tc := range []struct {
		o    sendOptions
		msg  string
		code int
		text string
	}{
		{sendOptions{}, msg, exUsage, "no recipients"},
		{sendOptions{headerRcpts: true}, "From: me@work.example\nSubject: x\n\nbody\n", exUsage, "no recipients"},
		{sendOptions{rcpts: []string{"a b <c"}}, msg, exUsage, "not an address"},
		{sendOptions{from: "stranger@example.net", rcpts: []string{"a@example.org"}}, msg, exNoUser, "no account sends as stranger@example.net"},
		{sendOptions{rcpts: []string{"a@example.org"}}, "Subject: x\n\nbody\n", exNoUser, "names no sender"},
		// The error names the line: by its number or its text.
		{sendOptions{rcpts: []string{"a@example.org"}}, "From: me@work.example\nnot a header line\n\nbody\n", exDataErr, "line 2|not a header line"},
	} {
		p, err := prepareMessage(cfg, &tc.o, []byte(tc.msg), now)
		if err == nil || p.code != tc.code || !containsAny(err.Error(), tc.text) {
			t.Errorf("%+v: exit %d, %v; want %d and %q", tc.o, p.code, err, tc.code, tc.text)
		}
	}
}

// TestReadMessageDots: without -i a line holding a single "." ends the
// message, as sendmail reads it; with -i it is part of it.
func TestReadMessageDots(t *testing.T) {
	in := "Subject: x\n\nfirst\n.\nafter\n"
	got, err := readMessage(strings.NewReader(in), false)
	if err != nil || string(got) != "Subject: x\n\nfirst\n" {
		t.Errorf("without -i: %q, %v", got, err)
	}
	got, err = readMessage(strings.NewReader(strings.ReplaceAll(in, "\n", "\r\n")), false)
	if err != nil || string(got) != "Subject: x\r\n\r\nfirst\r\n" {
		t.Errorf("without -i, CRLF: %q, %v", got, err)
	}
	got, err = readMessage(strings.NewReader(in), true)
	if err != nil || string(got) != in {
		t.Errorf("with -i: %q, %v", got, err)
	}
	got, err = readMessage(strings.NewReader("a\n..\n.x\n"), false)
	if err != nil || string(got) != "a\n..\n.x\n" {
		t.Errorf("dotted lines: %q, %v", got, err)
	}
	for in, want := range map[string]string{"": "", "a\nb\r\nc\n": "a\r\nb\r\nc\r\n", "\n\n": "\r\n\r\n", "a\r\n": "a\r\n", "a\rb\n": "a\rb\r\n"} {
		if got := string(crlf([]byte(in))); got != want {
			t.Errorf("crlf(%q) = %q, want %q", in, got, want)
		}
	}
}

// sendEnv is a config (one IMAP account at a closed port, with
// [accounts.smtp] at relayPort) and a store made by `postfach status`.
type sendEnv struct {
	dir, config, store string
}

func newSendEnv(t *testing.T, relay string) *sendEnv {
	t.Helper()
	dir := t.TempDir()
	e := &sendEnv{dir: dir, store: filepath.Join(dir, "store")}
	if relay == "" {
		relay = "host = \"127.0.0.1\"\nport = 9\ntls = \"none\""
	}
	doc := fmt.Sprintf("[store]\npath = %q\n\n[[accounts]]\nname = \"work\"\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\n"+
		"username = \"me@work.example\"\npassword = \"secret\"\n\n  [accounts.smtp]\n  %s\n", e.store, strings.ReplaceAll(relay, "\n", "\n  "))
	e.config = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(e.config, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// runIn runs the binary with stdin.
func runIn(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, postfachBin, args...)
	cmd.Env = environ(t, nil)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("postfach %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// TestSendExitCodes: `postfach send`'s exit statuses are sysexits.h's,
// with one line on stderr saying why; a queued message exits 0 silently.
func TestSendExitCodes(t *testing.T) {
	e := newSendEnv(t, "")
	msg := "From: me@work.example\nTo: a@example.org\nSubject: s\n\nbody\n"
	check := func(r result, code int, text string) {
		t.Helper()
		if r.code != code || !containsAny(r.stderr, text) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("want exit %d and %q:\n%s", code, text, r)
		}
	}
	// No store yet: send makes none.
	check(runIn(t, msg, "--config", e.config, "send", "-t"), 73, "no store at "+e.store)
	if _, err := os.Stat(e.store); err == nil {
		t.Error("send made a store")
	}
	mustRun(t, nil, "--config", e.config, "status")

	check(runIn(t, msg, "--config", e.config, "send", "-q"), 64, "unknown option -q")
	check(runIn(t, msg, "--config", e.config, "send", "-f"), 64, "-f needs a value")
	check(runIn(t, msg, "--config", e.config, "send"), 64, "no recipients")
	check(runIn(t, "Subject: s\n\nbody\n", "--config", e.config, "send", "-t"), 64, "no recipients")
	check(runIn(t, "To: a@example.org\n bad continuation\nnot a field\n\nbody\n", "--config", e.config, "send", "-t"), 65, "line 3|not a field")
	check(runIn(t, msg, "--config", filepath.Join(e.dir, "missing.toml"), "send", "-t"), 78, "no config file")

	r := runIn(t, msg, "--config", e.config, "send", "-t", "-oi", "-oem", "b@example.org")
	if r.code != 0 || r.stderr != "" || r.stdout != "" {
		t.Fatalf("queueing: %s", r)
	}
	q := queueList(t, e.config)
	if len(q.Messages) != 1 {
		t.Fatalf("queue after one send: %+v", q)
	}
	m := q.Messages[0]
	if m.Account != "work" || m.From != "me@work.example" || len(m.Recipients) != 2 ||
		m.Recipients[0].Addr != "a@example.org" || m.Recipients[1].Addr != "b@example.org" || m.Subject != "s" {
		t.Errorf("queued: %+v", m)
	}
}

// queueList runs `queue --json`, checks its shape and decodes it.
func queueList(t *testing.T, config string, extra ...string) queueJSON {
	t.Helper()
	r := mustRun(t, nil, append([]string{"--config", config, "queue", "--json"}, extra...)...)
	checkQueueShape(t, r.stdout)
	var q queueJSON
	if err := json.Unmarshal([]byte(r.stdout), &q); err != nil {
		t.Fatalf("queue --json: %v\n%s", err, r.stdout)
	}
	return q
}

// checkQueueShape checks that every documented key of `queue --json` is
// there with its JSON type.
func checkQueueShape(t *testing.T, out string) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("queue --json is not one JSON object: %v\n%s", err, out)
	}
	kinds := func(where string, obj map[string]any, keys map[string]string) {
		for k, kind := range keys {
			v, ok := obj[k]
			if !ok {
				t.Errorf("queue --json: %s has no %q", where, k)
				continue
			}
			switch kind {
			case "string":
				_, ok = v.(string)
			case "number":
				_, ok = v.(float64)
			case "array":
				_, ok = v.([]any)
			}
			if !ok {
				t.Errorf("queue --json: %s.%s is %T, want a JSON %s", where, k, v, kind)
			}
		}
	}
	kinds("top", doc, map[string]string{"messages": "array"})
	msgs, _ := doc["messages"].([]any)
	for i, m := range msgs {
		obj, _ := m.(map[string]any)
		where := fmt.Sprintf("messages[%d]", i)
		kinds(where, obj, map[string]string{"id": "number", "account": "string", "from": "string", "recipients": "array",
			"subject": "string", "message_id": "string", "size": "number", "queued": "string", "attempts": "number",
			"next_attempt": "string", "last_reply": "string", "state": "string"})
		rcpts, _ := obj["recipients"].([]any)
		for j, r := range rcpts {
			ro, _ := r.(map[string]any)
			kinds(fmt.Sprintf("%s.recipients[%d]", where, j), ro, map[string]string{"addr": "string", "state": "string", "reply": "string"})
		}
		for _, k := range []string{"queued", "next_attempt"} {
			if s, _ := obj[k].(string); s != "" {
				if _, err := time.Parse(time.RFC3339, s); err != nil {
					t.Errorf("queue --json: %s.%s %q is not RFC 3339", where, k, s)
				}
			}
		}
	}
	if f, ok := doc["flushed"]; ok {
		list, ok := f.([]any)
		if !ok {
			t.Fatalf("queue --json: flushed is %T", f)
		}
		for i, r := range list {
			obj, _ := r.(map[string]any)
			kinds(fmt.Sprintf("flushed[%d]", i), obj, map[string]string{"account": "string", "sent": "number", "deferred": "number", "failed": "number"})
		}
	}
}

// TestQueueListDelete: queue lists what send queued, in the table and as
// JSON; --delete removes one (its file too) and names an unknown id.
func TestQueueListDelete(t *testing.T) {
	e := newSendEnv(t, "")
	mustRun(t, nil, "--config", e.config, "status")
	for i := range 2 {
		r := runIn(t, fmt.Sprintf("From: me@work.example\nTo: a%d@example.org\nSubject: s%d\n\nbody\n", i, i), "--config", e.config, "send", "-t")
		if r.code != 0 {
			t.Fatal(r)
		}
	}
	q := queueList(t, e.config)
	if len(q.Messages) != 2 || q.Messages[0].Subject != "s0" || q.Messages[1].Subject != "s1" || q.Messages[0].State != "queued" {
		t.Fatalf("queue: %+v", q.Messages)
	}
	table := mustRun(t, nil, "--config", e.config, "queue").stdout
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID  ACCOUNT  RECIPIENTS") || !strings.Contains(lines[1], "a0@example.org") {
		t.Errorf("table:\n%s", table)
	}
	if st := getStatus(t, e.config); len(st.Accounts) != 1 || st.Accounts[0].Outbox != 2 || st.Accounts[0].OutboxFailed != 0 {
		t.Errorf("status: %+v, want 2 messages in work's outbox", st.Accounts)
	}
	if out := mustRun(t, nil, "--config", e.config, "status").stdout; !strings.Contains(out, "2 to send") {
		t.Errorf("status does not count the outbox:\n%s", out)
	}

	path := q.Messages[0].ID
	mustRun(t, nil, "--config", e.config, "queue", "--delete", fmt.Sprint(path))
	q = queueList(t, e.config)
	if len(q.Messages) != 1 || q.Messages[0].Subject != "s1" {
		t.Errorf("after --delete: %+v", q.Messages)
	}
	r := run(t, nil, "--config", e.config, "queue", "--delete", "999")
	checkOneLineError(t, r, "no message 999 in the queue")
	if r.code != 1 {
		t.Errorf("unknown id: %s", r)
	}
}

// containsAny reports whether s holds one of the "|"-separated texts.
func containsAny(s, texts string) bool {
	for _, x := range strings.Split(texts, "|") {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
