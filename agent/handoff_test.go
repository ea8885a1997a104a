package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/sync/outbox"
)

// TestQueueThroughAgent: postfach send hands a message to the agent,
// which queues it byte for byte with its envelope and nudges the
// account's sender; a message the agent refuses, and one cut short on
// the socket, leave nothing queued; with no agent, ErrNoAgent.
func TestQueueThroughAgent(t *testing.T) {
	fake := &fakeSenders{nudges: map[string]int{}, opts: map[string]outbox.Options{}}
	old := newMailSender
	newMailSender = fake.make
	defer func() { newMailSender = old }()

	dir := t.TempDir()
	cfg := outboxConfig(t, dir, [3]string{"work", "5m", "2525"})
	a, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	env := index.Envelope{From: "work@example.org", To: []string{"x@example.net", "y@example.net"}}
	body := []byte("From: work@example.org\r\nTo: x@example.net\r\nSubject: handed\r\n\r\nbody\r\n")
	if _, err := QueueThroughAgent(t.Context(), cfg, "work", env, body); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("no agent: %v, want ErrNoAgent", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, RunOptions{StopTimeout: 10 * time.Second}) }()
	waitAgent(t, ctx, a)

	id, err := QueueThroughAgent(ctx, cfg, "work", env, body)
	if err != nil {
		t.Fatal(err)
	}
	fake.waitFor(t, "work nudged after the hand-off", func() bool { return fake.nudges["work 2525"] >= 1 })
	var m *index.OutboxMessage
	if err := a.Index().Read(ctx, func(tx *index.ReadTx) error {
		m, err = tx.OutboxMessage(id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var to []string
	for _, r := range m.Recipients {
		to = append(to, r.Addr)
	}
	got, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Account != "work" || m.From != env.From || !slices.Equal(to, env.To) || strings.ReplaceAll(string(got), "\n", "\r\n") != string(body) {
		t.Errorf("queued %+v to %q with %q; want %+v and %q", m, to, got, env, body)
	}

	// Refused by the agent (no recipient): not queued, ErrAgentRefused,
	// also for a message larger than the socket's buffers (the agent
	// reads it all before it answers).
	big := append(append([]byte(nil), body...), strings.Repeat("x\r\n", 1<<20)...)
	for _, b := range [][]byte{body, big} {
		if _, err := QueueThroughAgent(ctx, cfg, "work", index.Envelope{From: env.From}, b); !errors.Is(err, ErrAgentRefused) {
			t.Errorf("no recipients, %d bytes: %v, want ErrAgentRefused", len(b), err)
		}
	}
	// Cut short: the line promises more than comes before the close.
	conn, err := net.Dial("unix", socketPath(cfg.Store.Path))
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(controlRequest{Op: "enqueue", Account: "work", From: env.From, To: env.To, Size: int64(len(body)) + 100})
	conn.Write(append(line, '\n'))
	dec := json.NewDecoder(conn)
	var ready, resp controlResponse
	if err := dec.Decode(&ready); err != nil || !ready.Ready {
		t.Fatalf("the agent's first answer: %+v, %v; want ready", ready, err)
	}
	conn.Write(body)
	conn.(*net.UnixConn).CloseWrite()
	if err := dec.Decode(&resp); err != nil || resp.Error == "" || resp.Queued != 0 {
		t.Errorf("a message cut short: %+v, %v; want an error and nothing queued", resp, err)
	}
	conn.Close()

	var all []*index.OutboxMessage
	if err := a.Index().Read(ctx, func(tx *index.ReadTx) error {
		all, err = tx.OutboxList("")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Errorf("%d messages queued, want 1 (the refused and the cut one not)", len(all))
	}
	files, _ := filepath.Glob(filepath.Join(cfg.Store.Path, ".postfach", "outbox", "*", "*"))
	var left []string
	for _, f := range files {
		if !strings.Contains(f, "lock") && f != m.Path {
			left = append(left, f)
		}
	}
	if len(left) > 0 {
		t.Errorf("files left in the outbox: %q", left)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestQueueThroughOldAgent: an agent that does not know "enqueue" (one
// started before an upgrade) answers the request's line with an error
// and reads no message: postfach send takes that for a refusal (and
// queues the message itself), even for a message larger than the
// socket's buffers.
func TestQueueThroughOldAgent(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".postfach"), 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", socketPath(root))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadBytes('\n')
			c.Write([]byte(`{"error":"unknown request \"enqueue\""}` + "\n"))
			c.Close()
		}
	}()
	cfg := &configs.Config{Store: configs.Store{Path: root}}
	big := []byte(strings.Repeat("x\r\n", 1<<20))
	_, err = QueueThroughAgent(t.Context(), cfg, "work", index.Envelope{From: "a@example.org", To: []string{"b@example.org"}}, big)
	if !errors.Is(err, ErrAgentRefused) {
		t.Errorf("an old agent: %v, want ErrAgentRefused", err)
	}
}
