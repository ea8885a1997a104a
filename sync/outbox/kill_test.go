package outbox

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestKill9 kills (SIGKILL) a process sending the queue right after the
// relay's reply to the 3rd of 6 messages, before the commit that records
// it: the next sender resends that message alone (one duplicate at the
// relay, counted as interrupted) and sends the rest; nothing is lost,
// and Sent gets one copy of each.
func TestKill9(t *testing.T) {
	if os.Getenv("OUTBOX_KILL_CHILD") != "" {
		killChild(t)
		return
	}
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := startRelay(t, relayOpts{auth: true})
	const n, killAt = 6, 3
	for i := range n {
		submit(t, st, strings.Replace(msgBcc, "hello", "hello "+strconv.Itoa(i), 1))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), "OUTBOX_KILL_CHILD="+root, "OUTBOX_KILL_PORT="+strconv.Itoa(r.Port),
		"OUTBOX_KILL_AT="+strconv.Itoa(killAt))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed: %v\n%s", err, out)
	}
	if got := len(r.Delivered()); got != killAt {
		t.Fatalf("the relay got %d messages before the kill, want %d", got, killAt)
	}
	var interrupted int
	testHookReplied = func(id index.OutboxID) bool {
		_ = st.Read(context.Background(), func(tx *index.ReadTx) error {
			m, err := tx.OutboxMessage(id)
			if err == nil && m.Interrupted > 0 {
				interrupted += m.Interrupted
			}
			return err
		})
		return false
	}
	defer func() { testHookReplied = nil }()
	s, err := NewSender(Options{Store: st, Account: acct, SaveSent: true,
		Relay: Relay{Host: r.Host, Port: r.Port, TLS: "none", Auth: creds()}})
	if err != nil {
		t.Fatal(err)
	}
	flush(t, s, FlushReport{Sent: n - killAt + 1})
	seen := map[string]int{}
	for _, d := range r.Delivered() {
		seen[string(d.Data)]++
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("%d messages, %d deliveries, %d duplicate, %d counted as interrupted", n, len(r.Delivered()), dups, interrupted)
	if len(seen) != n || dups != 1 || interrupted != 1 {
		t.Errorf("%d different messages delivered (want %d), %d duplicates and %d interrupted (want 1 and 1)", len(seen), n, dups, interrupted)
	}
	sent := folderMessages(t, st, "Sent")
	copies := map[string]int{}
	for _, m := range sent {
		copies[m]++
	}
	if len(sent) != n || len(copies) != n {
		t.Errorf("Sent holds %d copies of %d messages, want one of each of %d", len(sent), len(copies), n)
	}
	outboxEmpty(t, st)
}

// killChild is TestKill9's sending process: it kills itself after the
// relay's reply to message OUTBOX_KILL_AT.
func killChild(t *testing.T) {
	st, err := index.OpenStore(os.Getenv("OUTBOX_KILL_CHILD"))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(os.Getenv("OUTBOX_KILL_PORT"))
	at, _ := strconv.Atoi(os.Getenv("OUTBOX_KILL_AT"))
	replies := 0
	testHookReplied = func(index.OutboxID) bool {
		if replies++; replies == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return false
	}
	s, err := NewSender(Options{Store: st, Account: acct, SaveSent: true,
		Relay: Relay{Host: "127.0.0.1", Port: port, TLS: "none", Auth: creds()}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Flush(context.Background())
	t.Fatalf("Flush returned (%v): the kill did not happen", err)
}
