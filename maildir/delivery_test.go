package maildir

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// deliver writes the chunks as separate Writes and closes the delivery.
func deliver(t *testing.T, d *Dir, chunks ...string) *Delivery {
	t.Helper()
	w, err := d.NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		if n, err := w.Write([]byte(c)); n != len(c) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w
}

func commitMsg(t *testing.T, d *Dir, msg string, uid uint32, f Flags) Entry {
	t.Helper()
	w := deliver(t, d, msg)
	if err := d.DeliverSync(w); err != nil {
		t.Fatal(err)
	}
	file, err := d.Commit(w, uid, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SyncDir(); err != nil {
		t.Fatal(err)
	}
	sub, name := filepath.Split(file)
	e, ok := ParseName(name)
	if !ok {
		t.Fatalf("ParseName(%q) failed", name)
	}
	e.Sub = filepath.Clean(sub)
	return e
}

// checkFile commits w and checks the file, Size and Sum against want.
func checkFile(t *testing.T, d *Dir, w *Delivery, want string) {
	t.Helper()
	if w.Size() != int64(len(want)) || w.Sum() != sha256.Sum256([]byte(want)) {
		t.Errorf("Size, Sum = %d, %x; want %d, %x", w.Size(), w.Sum(), len(want), sha256.Sum256([]byte(want)))
	}
	file, err := d.Commit(w, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(d.Path, file))
	if err != nil || string(b) != want {
		t.Errorf("file holds %q, %v; want %q", b, err, want)
	}
}

func TestDeliveryCRLF(t *testing.T) {
	d := openTemp(t)
	tests := []struct {
		chunks []string
		want   string
	}{
		{[]string{"a\r\nb\r\n"}, "a\nb\n"},
		{[]string{"a\r", "\nb"}, "a\nb"},
		{[]string{"a\r", "", "\nb"}, "a\nb"},
		{[]string{"a\r", "b"}, "a\rb"},
		{[]string{"a\r"}, "a\r"},
		{[]string{"\r"}, "\r"},
		{[]string{"\r\r\n"}, "\r\n"},
		{[]string{"\r", "\r", "\n"}, "\r\n"},
		{[]string{"\r", "\r"}, "\r\r"},
		{[]string{"\n\r\n\r"}, "\n\n\r"},
		{[]string{"a\n", "\r", "\n"}, "a\n\n"},
		{[]string{}, ""},
	}
	for _, tt := range tests {
		w := deliver(t, d, tt.chunks...)
		checkFile(t, d, w, tt.want)
	}
}

func TestDeliveryEverySplit(t *testing.T) {
	d := openTemp(t)
	msg := "From: a\r\nSubject: b\r\n\r\nline\r\nlone\rcr\r\r\nend\r"
	want := strings.ReplaceAll(msg, "\r\n", "\n")
	for i := 0; i <= len(msg); i++ {
		for j := i; j <= len(msg); j++ {
			w := deliver(t, d, msg[:i], msg[i:j], msg[j:])
			if w.Size() != int64(len(want)) || w.Sum() != sha256.Sum256([]byte(want)) {
				t.Fatalf("split %d,%d: size %d, sum differs", i, j, w.Size())
			}
			if string(w.Header()) != "From: a\nSubject: b\n\n" {
				t.Fatalf("split %d,%d: header %q", i, j, w.Header())
			}
			w.Abort()
		}
	}
	// One byte at a time.
	w, err := d.NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(msg); i++ {
		w.Write([]byte{msg[i]})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, d, w, want)
}

// TestDeliveryReadFrom: io.Copy into a Delivery (ReadFrom, which converts
// its own buffer in place) stores what Write does, however the reader cuts
// the stream, also across ReadFrom's buffer; and Write leaves the
// caller's bytes as they were.
func TestDeliveryReadFrom(t *testing.T) {
	d := openTemp(t)
	var msg bytes.Buffer
	msg.WriteString("From: a\r\nSubject: b\r\n\r\n")
	for i := 0; msg.Len() < 3*bufSize; i++ {
		fmt.Fprintf(&msg, "line %d\r\nlone\rcr\r\r\n", i)
	}
	msg.WriteString("end\r")
	wire := msg.Bytes()
	want := bytes.ReplaceAll(wire, []byte("\r\n"), []byte("\n"))
	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(wire) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(wire)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(wire)) },
		"odd":      func() io.Reader { return io.LimitReader(oddReader{bytes.NewReader(wire)}, int64(len(wire))) },
	}
	for name, r := range readers {
		w, err := d.NewDelivery()
		if err != nil {
			t.Fatal(err)
		}
		if n, err := w.ReadFrom(r()); n != int64(len(wire)) || err != nil {
			t.Fatalf("%s: ReadFrom = %d, %v", name, n, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if w.Size() != int64(len(want)) || w.Sum() != sha256.Sum256(want) || string(w.Header()) != "From: a\nSubject: b\n\n" {
			t.Fatalf("%s: size %d, header %q", name, w.Size(), w.Header())
		}
		w.Abort()
	}
	orig := bytes.Clone(wire)
	w, err := d.NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(wire); n != len(wire) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !bytes.Equal(wire, orig) {
		t.Fatal("Write changed the bytes it was given")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Sum() != sha256.Sum256(want) {
		t.Fatal("Write of the whole message: sum differs")
	}
	w.Abort()
}

// TestDeliveryWriteAllocs: a caller writing a line at a time (an mbox
// import) costs no allocation per Write: Write keeps its buffer until
// Close, and a buffer per call made a 31 MiB message grow the heap by
// 18 MiB under the race detector (whose sync.Pool drops Puts).
func TestDeliveryWriteAllocs(t *testing.T) {
	d := openTemp(t)
	w, err := d.NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	line := []byte("Tomorrow budget agenda when deploy. Budget message latency draft\r\n")
	if allocs := testing.AllocsPerRun(1000, func() { w.Write(line) }); allocs > 0 {
		t.Errorf("a Write of one line: %.1f allocations", allocs)
	}
}

// oddReader reads at most 7,919 bytes at a time: its cuts fall anywhere
// in a line.
type oddReader struct{ r io.Reader }

func (o oddReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 7919)]) }

// BenchmarkDeliveryReadFrom: a message with CRLF line ends, as a FETCH
// brings it, into tmp/.
func BenchmarkDeliveryReadFrom(b *testing.B) {
	d, err := Open(filepath.Join(b.TempDir(), "acct", "INBOX"))
	if err != nil {
		b.Fatal(err)
	}
	var msg bytes.Buffer
	msg.WriteString("From: a\r\nSubject: b\r\n\r\n")
	for msg.Len() < 80<<10 {
		msg.WriteString("Tomorrow budget agenda when deploy. Budget message latency draft schedule a\r\n")
	}
	wire := msg.Bytes()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		w, err := d.NewDelivery()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.ReadFrom(bytes.NewReader(wire)); err != nil {
			b.Fatal(err)
		}
		w.Abort()
	}
}

func TestDeliveryHeader(t *testing.T) {
	d := openTemp(t)
	big := strings.Repeat("X-Long: "+strings.Repeat("y", 100)+"\r\n", 1000)
	tests := []struct {
		msg, want string
	}{
		{"A: b\r\nC: d\r\n\r\nbody\r\n\r\nmore", "A: b\nC: d\n\n"},
		{"A: b\r\n", "A: b\n"},
		{"A: b", "A: b"},
		{"\r\nbody", "\n"},
		{"", ""},
		{big + "\r\nbody", strings.ReplaceAll(big, "\r\n", "\n")[:MaxHeader]},
	}
	for _, tt := range tests {
		w := deliver(t, d, tt.msg)
		if got := string(w.Header()); got != tt.want {
			t.Errorf("Header of %.20q = %.40q (%d bytes), want %.40q (%d bytes)", tt.msg, got, len(got), tt.want, len(tt.want))
		}
		w.Abort()
	}
}

func TestCommitNoOverwrite(t *testing.T) {
	d := openTemp(t)
	w := deliver(t, d, "new message")
	dst := filepath.Join(d.Path, "cur", formatName(w.Key(), 3, FlagSeen))
	writeFile(t, dst, "existing")
	if _, err := d.Commit(w, 3, FlagSeen); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Commit over an existing file: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "existing" {
		t.Errorf("existing file now holds %q", b)
	}
	tmp := filepath.Join(d.Path, "tmp", w.Key())
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("tmp file gone after failed commit: %v", err)
	}
	// Another name works.
	name, err := d.Commit(w, 4, FlagSeen)
	if err != nil || name != "cur/"+w.Key()+",U=4:2,S" {
		t.Fatalf("Commit = %q, %v", name, err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("tmp file left after commit: %v", err)
	}
	if _, err := d.Commit(w, 5, 0); err == nil {
		t.Error("second Commit: no error")
	}
	w.Abort() // no-op after Commit
	if _, err := os.Stat(filepath.Join(d.Path, name)); err != nil {
		t.Errorf("Abort after Commit removed the message: %v", err)
	}

	// The link fallback refuses to overwrite too.
	src := filepath.Join(d.Path, "tmp", "src")
	writeFile(t, src, "src")
	if err := linkRename(src, dst); !errors.Is(err, fs.ErrExist) {
		t.Errorf("linkRename over an existing file: %v", err)
	}
	other := filepath.Join(d.Path, "cur", "other:2,")
	if err := linkRename(src, other); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(other); string(b) != "src" {
		t.Errorf("moved file holds %q", b)
	}
	if _, err := os.Stat(src); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("source left: %v", err)
	}
}

func TestAbort(t *testing.T) {
	d := openTemp(t)
	w, err := d.NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Abort()
	w.Abort()
	if ents, _ := os.ReadDir(filepath.Join(d.Path, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %v", ents)
	}
	if _, err := d.Commit(w, 1, 0); err == nil {
		t.Error("Commit after Abort: no error")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Abort: no error")
	}
}

func TestSyncer(t *testing.T) {
	root := t.TempDir()
	s, err := OpenSyncer(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var dirs []*Dir
	var ds []*Delivery
	for i := range 3 {
		d, err := Open(filepath.Join(root, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
		w := deliver(t, d, fmt.Sprintf("message %d\r\n", i))
		ds = append(ds, w)
	}
	// An open delivery is flushed first.
	w, err := dirs[0].NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("still open\r\n"))
	ds = append(ds, w)
	if err := s.Sync(ds); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dirs[0].Path, "tmp", w.Key())); string(b) != "still open\n" {
		t.Errorf("open delivery not flushed: %q", b)
	}
	for i, w := range ds {
		d := dirs[i%3]
		if _, err := d.Commit(w, uint32(i+1), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dirs {
		if err := d.SyncDir(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(nil); err != nil {
		t.Error(err)
	}
	// A full batch (syncfs; the ones above were synced file by file).
	var full []*Delivery
	for i := range SyncfsMin {
		full = append(full, deliver(t, dirs[i%3], fmt.Sprintf("message %d of a full batch\r\n", i)))
	}
	if err := s.Sync(full); err != nil {
		t.Fatal(err)
	}
	for i, w := range full {
		if _, err := dirs[i%3].Commit(w, uint32(100+i), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ds); err == nil {
		t.Error("Sync of committed deliveries: no error")
	}
	// The per-file fallback used where syncfs is missing.
	w2 := deliver(t, dirs[0], "x")
	if err := w2.syncFile(); err != nil {
		t.Error(err)
	}
	w2.Abort()
}

// TestSyncerOtherFileSystem: in a full batch, a folder on another file
// system than the store root (here tmpfs) is fsynced file by file; the
// root's by syncfs.
func TestSyncerOtherFileSystem(t *testing.T) {
	other, err := os.MkdirTemp("/dev/shm", "syncer")
	if err != nil {
		t.Fatalf("needs a tmpfs at /dev/shm: %v", err)
	}
	defer os.RemoveAll(other)
	root := t.TempDir()
	s, err := OpenSyncer(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	here, err := Open(filepath.Join(root, "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	there, err := Open(filepath.Join(other, "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		d    *Dir
		same bool
	}{{here, true}, {there, false}} {
		same, err := s.sameFS(c.d.Path)
		if err != nil || same != c.same {
			t.Errorf("%s on the root's file system: %v, %v; want %v", c.d.Path, same, err, c.same)
		}
	}
	ds := []*Delivery{deliver(t, here, "a\r\n"), deliver(t, there, "b\r\n")}
	for range SyncfsMin {
		ds = append(ds, deliver(t, here, "more\r\n"))
	}
	if err := s.Sync(ds); err != nil {
		t.Fatal(err)
	}
	for i, d := range []*Dir{here, there} {
		if _, err := d.Commit(ds[i], 0, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// genReader produces n bytes of CRLF text in reads of odd sizes, so that
// CRLF pairs fall across Write boundaries, and hashes the LF form it expects
// on disk. It does not allocate while reading.
type genReader struct {
	left    int64
	crlf    [][]byte // the lines it cycles through
	lf      [][]byte // the same in LF form
	next    int
	line    []byte // rest of the current line
	want    hash.Hash
	wantLen int64
}

func newGenReader(size int64) *genReader {
	g := &genReader{left: size, want: sha256.New()}
	for i := range 64 {
		l := fmt.Sprintf("line %02d lone\rcr %s\r\n", i, strings.Repeat("x", i))
		g.crlf = append(g.crlf, []byte(l))
		g.lf = append(g.lf, []byte(strings.ReplaceAll(l, "\r\n", "\n")))
	}
	return g
}

var zs = bytes.Repeat([]byte("z"), 4096)

func (g *genReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if len(p) > 4093 {
		p = p[:4093]
	}
	n := 0
	for n < len(p) && g.left > 0 {
		if len(g.line) == 0 {
			i := g.next % len(g.crlf)
			g.next++
			if int64(len(g.crlf[i])) <= g.left {
				g.line = g.crlf[i]
				g.want.Write(g.lf[i])
				g.wantLen += int64(len(g.lf[i]))
			} else { // the tail: no CRLF in it
				g.line = zs[:g.left]
				g.want.Write(g.line)
				g.wantLen += g.left
			}
		}
		c := copy(p[n:], g.line)
		g.line = g.line[c:]
		n += c
		g.left -= int64(c)
	}
	return n, nil
}

func TestDeliveryLargeBoundedMemory(t *testing.T) {
	size := int64(50 << 20)
	if testing.Short() {
		size = 5 << 20
	}
	d := openTemp(t)
	w, err := d.NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	g := newGenReader(size)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := io.Copy(w, g)
	if err != nil || n != size {
		t.Fatalf("io.Copy = %d, %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)

	// Allocations while streaming: io.Copy's buffer and the header; nothing
	// that grows with the message.
	t.Logf("streamed %d bytes: %d bytes allocated, heap %d -> %d", size, after.TotalAlloc-before.TotalAlloc, before.HeapAlloc, after.HeapAlloc)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("streaming %d bytes allocated %d bytes", size, alloc)
	}
	if after.HeapAlloc > before.HeapAlloc+2<<20 {
		t.Errorf("heap grew from %d to %d", before.HeapAlloc, after.HeapAlloc)
	}
	if cap(w.hdr) > MaxHeader || len(w.Header()) != MaxHeader {
		t.Errorf("header buffer: len %d cap %d", len(w.hdr), cap(w.hdr))
	}
	var want [32]byte
	g.want.Sum(want[:0])
	if w.Size() != g.wantLen || w.Sum() != want {
		t.Errorf("Size %d, want %d; sums equal: %v", w.Size(), g.wantLen, w.Sum() == want)
	}
	st, err := os.Stat(filepath.Join(d.Path, "tmp", w.Key()))
	if err != nil || st.Size() != g.wantLen {
		t.Errorf("file size %v, %v; want %d", st.Size(), err, g.wantLen)
	}
	if !bytes.HasPrefix(w.Header(), []byte("line 00 lone\rcr \nline 01 lone\rcr x\n")) {
		t.Errorf("header starts %.40q", w.Header())
	}
}

// TestCommitUnread: an unread message is delivered into new/ (without info
// when it has no flags at all, as the Maildir convention says; with its
// other flags kept otherwise), a read one into cur/; Scan and Find see
// both, and SetFlags with S moves it to cur/ (as a mail reader would).
func TestCommitUnread(t *testing.T) {
	d := openTemp(t)
	for _, tc := range []struct {
		uid   uint32
		flags Flags
		want  string // file relative to the folder, after the key
	}{
		{7, 0, "new/%s,U=7"},
		{0, 0, "new/%s"},
		{8, FlagFlagged, "new/%s,U=8:2,F"},
		{9, FlagSeen | FlagAnswered, "cur/%s,U=9:2,RS"},
	} {
		w := deliver(t, d, "Subject: x\n\nbody\n")
		file, err := d.Commit(w, tc.uid, tc.flags)
		if want := strings.Replace(tc.want, "%s", w.Key(), 1); err != nil || file != want {
			t.Errorf("Commit(%d, %v) = %q, %v; want %q", tc.uid, tc.flags, file, err, want)
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d.Path, file)); err != nil || string(b) != "Subject: x\n\nbody\n" {
			t.Errorf("%s holds %q, %v", file, b, err)
		}
		e, err := d.Find(w.Key(), "")
		if err != nil || e.Sub+"/"+e.Name != file || e.UID != tc.uid || e.Flags != tc.flags {
			t.Errorf("Find: %+v, %v; want %s", e, err, file)
			continue
		}
		ne, err := d.SetFlags(e, e.Flags|FlagSeen)
		if err != nil || ne.Sub != "cur" || ne.UID != tc.uid || ne.Flags != tc.flags|FlagSeen {
			t.Errorf("SetFlags(S): %+v, %v; want it in cur/ with S", ne, err)
		}
	}
	es, err := d.Scan()
	if err != nil || len(es) != 4 {
		t.Errorf("Scan: %d entries, %v", len(es), err)
	}
}

// TestNewDeliveryKey: a delivery with the caller's key is named by it
// (a tmp/ file of an earlier try replaced); a key that could not be one
// is refused.
func TestNewDeliveryKey(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "box"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", ".x", "a/b", "a,b", "a:b"} {
		if _, err := d.NewDeliveryKey(bad); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	if err := os.WriteFile(filepath.Join(d.Path, "tmp", "k1.f1"), []byte("an earlier try, longer than this one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := d.NewDeliveryKey("k1.f1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("hi\r\n")); err != nil {
		t.Fatal(err)
	}
	file, err := d.Commit(w, 0, FlagSeen)
	if err != nil {
		t.Fatal(err)
	}
	if file != "cur/k1.f1:2,S" || w.Key() != "k1.f1" {
		t.Errorf("committed as %q (key %q)", file, w.Key())
	}
	if b, err := os.ReadFile(filepath.Join(d.Path, file)); err != nil || string(b) != "hi\n" {
		t.Errorf("file holds %q, %v", b, err)
	}
}

// TestSyncAhead: the fsync SyncAhead starts is the one the batch's sync
// takes (the delivery counts as synced, its file is committed whole); an
// error of it fails that sync, naming the file; Abort waits for it; before
// Close it does nothing.
func TestSyncAhead(t *testing.T) {
	root := t.TempDir()
	s, err := OpenSyncer(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := Open(filepath.Join(root, "f"))
	if err != nil {
		t.Fatal(err)
	}

	open, err := d.NewDelivery()
	if err != nil {
		t.Fatal(err)
	}
	open.Write([]byte("still being written\r\n"))
	open.SyncAhead()
	if open.ahead != nil {
		t.Error("SyncAhead before Close started an fsync")
	}
	open.Abort()

	w := deliver(t, d, "synced ahead\r\n")
	w.SyncAhead()
	if w.ahead == nil {
		t.Fatal("SyncAhead after Close started no fsync")
	}
	w.SyncAhead() // once is enough
	if err := s.Sync([]*Delivery{w}); err != nil {
		t.Fatal(err)
	}
	if !w.synced || w.ahead != nil {
		t.Errorf("after Sync: synced %v, ahead %v; want the fsync taken", w.synced, w.ahead)
	}
	name, err := d.Commit(w, 7, FlagSeen)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(d.Path, name)); string(got) != "synced ahead\n" {
		t.Errorf("committed %q", got)
	}

	// The fsync fails (its file is gone before it runs: every slot taken
	// meanwhile): the batch's sync fails, naming the file, and does not
	// take the delivery for synced.
	for range cap(aheadSlots) {
		aheadSlots <- struct{}{}
	}
	bad := deliver(t, d, "lost\r\n")
	bad.SyncAhead()
	if err := os.Remove(bad.Path()); err != nil {
		t.Fatal(err)
	}
	for range cap(aheadSlots) {
		<-aheadSlots
	}
	err = s.Sync([]*Delivery{bad})
	if err == nil || !strings.Contains(err.Error(), bad.Path()) {
		t.Errorf("Sync after a failed fsync ahead: %v, want an error naming %s", err, bad.Path())
	}
	if bad.synced {
		t.Error("a delivery whose fsync failed counts as synced")
	}
	bad.Abort()

	// Abort waits for the fsync, then removes the file.
	w3 := deliver(t, d, "aborted\r\n")
	w3.SyncAhead()
	w3.Abort()
	if ents, _ := os.ReadDir(filepath.Join(d.Path, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %v after Abort", ents)
	}
}
