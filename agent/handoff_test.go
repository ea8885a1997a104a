package agent

import (
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
	conn.Write(append(append(line, '\n'), body...))
	conn.(*net.UnixConn).CloseWrite()
	var resp controlResponse
	if err := json.NewDecoder(conn).Decode(&resp); err != nil || resp.Error == "" || resp.Queued != 0 {
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
