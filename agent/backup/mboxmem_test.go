package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// bigMessage writes to p a foreign mbox of one message of size bytes
// of body (no From_ line but the first: all of it is one message), in
// lines of lineLen bytes, or one line without a newline when lineLen is
// 0; every 1000th line is a quoted From line. It returns the SHA-256
// and the size of the message as the store must hold it.
func bigMessage(t *testing.T, p string, size, lineLen int) (sum [32]byte, n int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	h := sha256.New()
	stored := io.MultiWriter(h, &sizeWriter{&n})
	w.WriteString("From someone@example.org Mon Jan  2 15:04:05 2006\n")
	head := "Subject: one big message\nStatus: RO\n\n"
	w.WriteString(head)
	stored.Write([]byte(head))
	line := []byte(strings.Repeat("abcdefghij", 1+lineLen/10)[:max(lineLen, 1)-1] + "\n")
	if lineLen == 0 {
		chunk := []byte(strings.Repeat("x", 1<<16))
		for left := size; left > 0; left -= len(chunk) {
			c := chunk[:min(left, len(chunk))]
			w.Write(c)
			stored.Write(c)
		}
	} else {
		quoted := []byte(">From the middle" + string(line[len(">From the middle"):]))
		for i := 0; i*lineLen < size; i++ {
			if i%1000 == 999 {
				w.Write(quoted)
				stored.Write(quoted[1:])
				continue
			}
			w.Write(line)
			stored.Write(line)
		}
		w.WriteString("\n") // the empty line that ends a message
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	h.Sum(sum[:0])
	return sum, n
}

type sizeWriter struct{ n *int64 }

func (c *sizeWriter) Write(p []byte) (int, error) { *c.n += int64(len(p)); return len(p), nil }

// heapGrowth runs f and returns how far the heap in use rose above
// where it was before, sampled every millisecond.
func heapGrowth(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(stop)
	<-done
	return peak - base
}

// TestMboxImportBoundedMemory: a foreign mbox that is one huge message
// (no From_ line after the first), in ordinary lines or in one line, is
// imported byte for byte, its heap never near the message's size: the
// message streams into its delivery.
func TestMboxImportBoundedMemory(t *testing.T) {
	size := 96 << 20
	if testing.Short() {
		size = 32 << 20
	}
	const bound = 16 << 20
	for _, lineLen := range []int{80, 0} {
		t.Run(fmt.Sprintf("lines of %d", lineLen), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "Big.mbox")
			sum, n := bigMessage(t, p, size, lineLen)
			var out string
			var err error
			grew := heapGrowth(func() { out, err = Materialize(context.Background(), p, filepath.Join(dir, "tmp")) })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("a message of %d MiB: the heap grew by %.1f MiB", n>>20, float64(grew)/(1<<20))
			if grew > bound {
				t.Errorf("importing a message of %d MiB, the heap grew by %d MiB (at most %d)", n>>20, grew>>20, bound>>20)
			}
			checkOneMessage(t, out, sum, n)
		})
	}
}

// checkOneMessage checks that the store at root holds one message,
// with the SHA-256 and size given, in its row and in its file.
func checkOneMessage(t *testing.T, root string, sum [32]byte, n int64) {
	t.Helper()
	st, err := index.Open(filepath.Join(root, ".postfach", "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ms []*index.Message
	var fpath string
	err = st.Read(context.Background(), func(tx *index.ReadTx) error {
		accts, err := tx.Accounts()
		if err != nil || len(accts) != 1 {
			return fmt.Errorf("accounts %v: %v", accts, err)
		}
		fs, err := tx.Folders(accts[0].ID)
		if err != nil {
			return err
		}
		for _, f := range fs {
			m, err := tx.Messages(f.ID)
			if err != nil {
				return err
			}
			ms, fpath = append(ms, m...), f.Path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("%d messages imported, want 1", len(ms))
	}
	m := ms[0]
	if m.SHA256 != sum || m.Size != n || m.Flags != maildir.FlagSeen {
		t.Errorf("row: SHA-256 %x size %d flags %v; want %x %d S", m.SHA256[:6], m.Size, m.Flags, sum[:6], n)
	}
	e, err := hashFile(filepath.Join(root, filepath.FromSlash(fpath), filepath.FromSlash(m.File)), "x")
	if err != nil {
		t.Fatal(err)
	}
	if e.SHA256 != sum || e.Size != n {
		t.Errorf("file: SHA-256 %x size %d; want %x %d", e.SHA256[:6], e.Size, sum[:6], n)
	}
}

// TestMboxLongHeldLines: the lines the reader holds whole (a From_
// line, the lines an export adds) are refused past maxHeldLine, naming
// the line; a message's own long lines are not held (see
// TestMboxImportBoundedMemory) and import whole.
func TestMboxLongHeldLines(t *testing.T) {
	long := strings.Repeat("x", 1<<20+1) // maxHeldLine+1
	date := " Mon Jan  2 15:04:05 2006\n"
	for _, c := range []struct {
		name, mbox, err string
	}{
		{"from line", "From a" + date + "Subject: a\n\n" + long + "\n\nFrom " + long + date + "Subject: b\n\nb\n",
			"line 6: a From_ line or export header longer than 1048576 bytes"},
		{"first from line", "From " + long + date + "Subject: b\n\nb\n",
			"line 1: a From_ line or export header longer than 1048576 bytes"},
		{"added line", "From a" + date + "X-Postfach-Export: v=1; added=1; flags=-; eol=yes; sha256=" + strings.Repeat("00", 32) + "\n" +
			"X-Keywords: " + long + "\nSubject: a\n\na\n", "line 3: a From_ line or export header longer than 1048576 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "Long.mbox")
			if err := os.WriteFile(p, []byte(c.mbox), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Materialize(context.Background(), p, filepath.Join(dir, "tmp"))
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Materialize: %v; want %q", err, c.err)
			}
		})
	}
}
