//go:build unix

package index_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestIndexPendingCancel: Ctrl-C during `postfach search`'s indexing stops
// it promptly, even inside a message that takes long to read (here one
// that never ends: its file is a FIFO fed an endless attachment), and the
// batch under way is not written.
func TestIndexPendingCancel(t *testing.T) {
	st := open(t)
	root := t.TempDir()
	dir, err := maildir.Open(filepath.Join(root, "a", "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir.Path, "cur", "k1:2,")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fed := make(chan struct{})
	go func() { // the writer: stops when the reader closes the FIFO
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		w.WriteString("Subject: endless\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/pdf\n\n")
		line := []byte("JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZUR\n")
		total := 0
		for {
			n, err := w.Write(line)
			if err != nil {
				return
			}
			if total < 4<<20 && total+n >= 4<<20 {
				close(fed)
			}
			total += n
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = st.Write(ctx, func(tx *index.Tx) error {
		a, _ := tx.EnsureAccount("a")
		f, _ := tx.EnsureFolder(a, "INBOX", "a/INBOX")
		m := newMsg(f.ID, "k1", "endless", "")
		m.DeferText = true
		_, err := tx.AddMessages([]*index.NewMessage{m})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := st.IndexPending(ctx, root, nil)
		done <- err
	}()
	<-fed // 4 MB into the message
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("IndexPending after the cancel: %v, want context.Canceled", err)
		}
		t.Logf("returned %v after the cancel", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("IndexPending still running 10s after the cancel")
	}
	st.Read(context.Background(), func(tx *index.ReadTx) error {
		if p, _ := tx.PendingText(); p != 1 {
			t.Errorf("%d pending after the cancel, want the message still pending", p)
		}
		return nil
	})
}
