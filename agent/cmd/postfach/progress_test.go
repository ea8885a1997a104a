package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"
)

// Sizes are decimal, as their labels say.
func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 999: "999 B", 1000: "1.0 kB", 174_165_987: "174.2 MB", 1_500_000_000: "1.5 GB", 1 << 20: "1.0 MB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// No rate before it means something: not "0 msg/hr" at the start, not
// thousands a second after one quick message.
func TestRate(t *testing.T) {
	for _, tc := range []struct {
		done    int
		bytes   int64
		elapsed time.Duration
		want    string
	}{
		{0, 0, 10 * time.Second, ""},
		{5, 5000, 100 * time.Millisecond, ""},
		{90, 3_000_000, 3 * time.Second, "30 msg/s, 1.0 MB/s"},
		{1, 1000, 30 * time.Second, "2 msg/min, 33 B/s"},
	} {
		if got := rate(tc.done, tc.bytes, tc.elapsed, true); got != tc.want {
			t.Errorf("rate(%d, %d, %v) = %q, want %q", tc.done, tc.bytes, tc.elapsed, got, tc.want)
		}
	}
}

// The sync bar never shows a total (it would grow as folders are planned)
// nor a rate at the start.
func TestBarProgressNoMovingTotal(t *testing.T) {
	var buf bytes.Buffer
	p := newBarProgressTo(&buf, progressbar.OptionSetWidth(defaultBarWidth))
	p.Expect(10, 1000)
	p.Done(1, 100)
	p.Expect(500, 50000)
	p.Done(1, 100)
	p.Finish()
	out := buf.String()
	for _, bad := range []string{"/10", "/510", "msg/hr", "0 msg/s", "%"} {
		if strings.Contains(out, bad) {
			t.Errorf("bar output holds %q: %q", bad, out)
		}
	}
	if !strings.Contains(out, "syncing: 1 messages (100 B)") {
		t.Errorf("bar output %q does not count what was done", out)
	}
	if d := p.describe(3 * time.Second); d != "syncing: 2 messages (200 B), 40 msg/min" {
		t.Errorf("after 3 s: %q", d)
	}
}

// On a terminal that does not tell its width (a pty of size 0x0), a bar
// has a width, not none.
func TestBarWidthWithoutTerminalWidth(t *testing.T) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	var unlock int32
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	if ws, err := unix.IoctlGetWinsize(int(slave.Fd()), unix.TIOCGWINSZ); err != nil || ws.Col != 0 {
		t.Fatalf("pty size %+v, %v; want 0 columns", ws, err)
	}
	bar := progressbar.NewOptions64(100, progressbar.OptionSetWriter(slave), widthOption(slave),
		progressbar.OptionSetTheme(progressbar.Theme{Saucer: "#", SaucerPadding: "-", BarStart: "[", BarEnd: "]"}))
	bar.Add(50)
	master.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte("]")) {
		n, err := master.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading the pty: %v; read %q", err, got)
		}
	}
	if !bytes.Contains(got, []byte("[####################--------------------]")) {
		t.Errorf("bar on a terminal without a width: %q, want 40 columns, half full", got)
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
