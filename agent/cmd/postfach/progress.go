package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"
)

// humanBytes writes a size in decimal units, as their labels say:
// 174,165,987 B is "174.2 MB".
func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// minRateTime is how long a run must have gone, and rate how many
// messages it must have done, before a rate means something: at the start
// it would say "0 msg/s", or thousands after one quick message.
const minRateTime = 2 * time.Second

// rate returns "45 msg/s" (or "12 msg/min" when slower) and, with bytes,
// ", 3.1 MB/s"; "" until the run has gone minRateTime and done a message.
func rate(done int, bytes int64, elapsed time.Duration, withBytes bool) string {
	if done == 0 || elapsed < minRateTime {
		return ""
	}
	secs := elapsed.Seconds()
	mps := float64(done) / secs
	s := fmt.Sprintf("%.0f msg/s", mps)
	if mps < 1 {
		s = fmt.Sprintf("%.0f msg/min", mps*60)
	}
	if withBytes {
		s += ", " + humanBytes(int64(float64(bytes)/secs)) + "/s"
	}
	return s
}

// defaultBarWidth is the bar's width when the terminal does not tell its
// own (a pty without a size, width 0).
const defaultBarWidth = 40

// widthOption makes a bar as wide as the terminal on f, or defaultBarWidth
// when the terminal does not say how wide it is: a bar measured against a
// width of 0 has no room at all.
func widthOption(f *os.File) progressbar.Option {
	if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col >= 40 {
		return progressbar.OptionFullWidth()
	}
	return progressbar.OptionSetWidth(defaultBarWidth)
}

type progressReporter interface {
	Expect(msgs int, bytes int64)
	Done(msgs int, bytes int64)
	Finish()
}

type nopProgress struct{}

func (nopProgress) Expect(int, int64) {}
func (nopProgress) Done(int, int64)   {}
func (nopProgress) Finish()           {}

// barProgress shows a sync's progress on a terminal. A sync learns what it
// has to do folder by folder while it already works (each folder's plan
// adds to the total), so the total is not known until the end: rather than
// a bar whose end moves away, it shows a spinner with the messages and
// bytes done and, once there is one, their rate.
type barProgress struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	start time.Time
	done  int
	bytes int64
}

func newBarProgress(f *os.File) *barProgress {
	return newBarProgressTo(f, widthOption(f))
}

func newBarProgressTo(w io.Writer, width progressbar.Option) *barProgress {
	return &barProgress{start: time.Now(), bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("syncing"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		width,
	)}
}

func (p *barProgress) Expect(int, int64) {}

func (p *barProgress) Done(msgs int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += msgs
	p.bytes += bytes
	p.bar.Describe(p.describe(time.Since(p.start)))
	p.bar.Add(msgs)
}

// describe is the text beside the spinner after elapsed.
func (p *barProgress) describe(elapsed time.Duration) string {
	s := fmt.Sprintf("syncing: %d messages (%s)", p.done, humanBytes(p.bytes))
	if r := rate(p.done, p.bytes, elapsed, false); r != "" {
		s += ", " + r
	}
	return s
}

func (p *barProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bar.Finish()
}
