package backup

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/corpus"
)

// BenchmarkBackupIncremental measures a directory backup of a
// 10,000-message store: the first (median of three, reported as
// first-ms), then, after 10 changes (4 flag changes, 3 removed, 3 new),
// the second, b.N times (each from the first as its base, the new
// snapshot removed after it), with second/first as ratio-%. It runs on
// two kinds of mail: corpus=real has the size mix of real mail (about
// 79 KB per message, 790 MB in all, as internal/bench's default corpus),
// corpus=small a few KB per message (25 MB), where the first backup has
// little to copy and the second's cost per file (one link) weighs most.
//
//	go test -run '^$' -bench BackupIncremental -benchtime 5x ./agent/backup/
func BenchmarkBackupIncremental(b *testing.B) {
	for _, c := range []struct {
		name string
		opts corpus.Options
	}{{"real", corpus.Options{RealSizes: true}}, {"small", testCorpus}} {
		b.Run("corpus="+c.name, func(b *testing.B) { benchIncremental(b, c.opts) })
	}
}

func benchIncremental(b *testing.B, opts corpus.Options) {
	s := newTestStoreOf(b, 10000, opts)
	to := filepath.Join(b.TempDir(), "backups")
	var firsts []time.Duration
	for i := range 3 {
		res := mustBackup(b, s, to, 0)
		firsts = append(firsts, res.Duration)
		if i < 2 { // the third stays: the base of the second
			if err := os.RemoveAll(res.Snapshot); err != nil {
				b.Fatal(err)
			}
		}
	}
	inbox := s.messages(b, "INBOX")
	s.setFlags(b, inbox[:4])
	s.remove(b, inbox[10:13])
	s.deliver(b, 3)
	var seconds []time.Duration
	b.ResetTimer()
	for range b.N {
		res, err := Backup(context.Background(), Options{Store: s.st, To: to})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if res.Copied != 3 || res.Linked != 9997 {
			b.Fatalf("second backup: %d copied, %d linked", res.Copied, res.Linked)
		}
		seconds = append(seconds, res.Duration)
		if err := os.RemoveAll(res.Snapshot); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	f, sec := median(firsts), median(seconds)
	b.ReportMetric(float64(f.Milliseconds()), "first-ms")
	b.ReportMetric(float64(sec.Milliseconds()), "second-ms")
	b.ReportMetric(100*sec.Seconds()/f.Seconds(), "ratio-%")
}

func median(ds []time.Duration) time.Duration {
	ds = append([]time.Duration(nil), ds...)
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}
