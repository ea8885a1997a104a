package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// fsyncProbe is the latency of creating a small file and fsyncing it, the
// unit of work of a Maildir delivery (mbsync does one per message). Both
// peers' times depend on it, and on a shared machine it varies a lot, so the
// report shows it from before and after the runs.
type fsyncProbe struct {
	Files  int     `json:"files"`
	Median float64 `json:"median_ms"`
	P90    float64 `json:"p90_ms"`
}

func (p fsyncProbe) String() string {
	return fmt.Sprintf("median %.2f ms, p90 %.2f ms (%d files)", p.Median, p.P90, p.Files)
}

// probeFsync creates n files of 4 KiB in a new directory below dir, each
// written and fsynced, and measures each.
func probeFsync(dir string, n int) (fsyncProbe, error) {
	d, err := os.MkdirTemp(dir, "fsync-probe-")
	if err != nil {
		return fsyncProbe{}, err
	}
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		f, err := os.OpenFile(filepath.Join(d, fmt.Sprint(i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fsyncProbe{}, err
		}
		_, err = f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fsyncProbe{}, err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return fsyncProbe{Files: n, Median: ms(lat[n/2]), P90: ms(lat[n*9/10])}, nil
}
