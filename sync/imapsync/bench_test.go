package imapsync_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	rtrace "runtime/trace"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// BenchmarkIncremental is the incremental phase of the peer comparison
// (go run ./internal/bench twoway) in-process, for profiling: an account of
// POSTFACH_BENCH_MESSAGES (default 10,000) messages over four folders,
// mirrored once; then per iteration POSTFACH_BENCH_CHANGES (default 100)
// \Seen toggles and as many new messages on the server,
// POSTFACH_BENCH_LOCAL_CHANGES (default: as many) S toggles (renames in
// cur/) and as many new files in the Maildir, and one timed sync. It reports the CPU time of this process and
// of Dovecot per sync too. POSTFACH_BENCH_CONNECTIONS sets the connections,
// POSTFACH_BENCH_TRACE=FILE writes the protocol of the syncs to FILE, and
// POSTFACH_BENCH_REAL=1 gives the corpus the size mix of real mail
// (corpus.Options.RealSizes, as go run ./internal/bench has by default),
// and POSTFACH_BENCH_GOTRACE=FILE writes an execution trace of each timed
// sync alone to FILE.0, FILE.1, ... (go tool trace -pprof=net FILE.0, and
// sync, syscall, sched). POSTFACH_BENCH_PERFCTL=FIFO writes "enable" and
// "disable" to perf's control FIFO around each timed sync, so that perf
// (which sees the kernel's share too, and Dovecot's) records the timed
// syncs alone:
//
//	mkfifo ctl; POSTFACH_BENCH_PERFCTL=ctl perf record -g -a -D -1 --control=fifo:ctl -- ./imapsync.test -test.run '^$' -test.bench Incremental
//
// Besides the time, it reports this process's CPU time per sync, the
// garbage collector's share of it, and Dovecot's.
//
//	go test -run '^$' -bench Incremental -benchtime 10x -cpuprofile cpu.out ./sync/imapsync
//	go tool pprof -tagfocus phase=incremental cpu.out
func BenchmarkIncremental(b *testing.B) {
	n := envInt("POSTFACH_BENCH_MESSAGES", 10000)
	changes := envInt("POSTFACH_BENCH_CHANGES", 100)
	local := envInt("POSTFACH_BENCH_LOCAL_CHANGES", changes)
	e := newEnv(b)
	var trace *os.File
	if p := os.Getenv("POSTFACH_BENCH_TRACE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		trace = f
	}
	e.opts = func(o *imapsync.Options) {
		o.Connections = envInt("POSTFACH_BENCH_CONNECTIONS", 0)
	}
	opts := corpus.Options{RealSizes: os.Getenv("POSTFACH_BENCH_REAL") == "1"}
	e.d.Seed(b, testenv.DefaultUser.Name, corpus.Generate(1, n, opts))
	e.sync()
	if trace != nil {
		e.opts = func(o *imapsync.Options) {
			o.Connections = envInt("POSTFACH_BENCH_CONNECTIONS", 0)
			o.Endpoint.Debug = trace
		}
	}
	gotrace := os.Getenv("POSTFACH_BENCH_GOTRACE")
	rng := rand.New(rand.NewPCG(1, 2))
	next := n
	c := e.d.Client(b, testenv.DefaultUser.Name)
	var serverCPU, clientCPU, gcCPU time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		toggleServerSeen(b, c, rng, changes)
		var fresh []corpus.Message
		for range changes {
			fresh = append(fresh, corpus.At(1, next, opts))
			next++
		}
		e.d.Seed(b, testenv.DefaultUser.Name, fresh)
		e.toggleLocalSeen(rng, local)
		for range local {
			m := corpus.At(2, next, opts)
			raw := bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
			e.writeForeign(m.Folder, fmt.Sprintf("1772445600.M%dP1.laptop", next), raw)
			next++
		}

		dovecot0, err := e.d.CPUTime()
		if err != nil {
			b.Fatal(err)
		}
		own0, gc0 := processCPU(), gcCPUTime()
		b.StartTimer()
		var res *imapsync.Result
		var tf *os.File
		if gotrace != "" {
			if tf, err = os.Create(fmt.Sprintf("%s.%d", gotrace, i)); err != nil {
				b.Fatal(err)
			}
			if err := rtrace.Start(tf); err != nil {
				b.Fatal(err)
			}
		}
		perfControl(b, "enable")
		// The label lets a profile show the timed syncs alone.
		pprof.Do(context.Background(), pprof.Labels("phase", "incremental"), func(context.Context) {
			res, _ = e.sync()
		})
		perfControl(b, "disable")
		if tf != nil {
			rtrace.Stop()
			tf.Close()
		}
		b.StopTimer()
		clientCPU += processCPU() - own0
		gcCPU += gcCPUTime() - gc0
		dovecot1, err := e.d.CPUTime()
		if err != nil {
			b.Fatal(err)
		}
		serverCPU += dovecot1 - dovecot0
		tot := res.Totals()
		// (A message toggled on both sides needs no flag change at all.)
		if tot.Uploaded != local || tot.New != changes || tot.FlagsPushed < local*9/10 || tot.FlagsChanged < changes*9/10 {
			b.Fatalf("sync did %+v, want about %d of each upstream change and %d of each local one", tot, changes, local)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(clientCPU.Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(serverCPU.Milliseconds())/float64(b.N), "dovecot-cpu-ms/op")
	b.ReportMetric(float64(gcCPU.Milliseconds())/float64(b.N), "gc-cpu-ms/op")
}

// perfControl writes cmd to perf's control FIFO, if
// POSTFACH_BENCH_PERFCTL names one.
func perfControl(b *testing.B, cmd string) {
	if p := os.Getenv("POSTFACH_BENCH_PERFCTL"); p != "" {
		if err := os.WriteFile(p, []byte(cmd+"\n"), 0); err != nil {
			b.Fatal(err)
		}
	}
}

// gcCPUTime is the CPU time the garbage collector has used in this
// process, as the runtime estimates it.
func gcCPUTime() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// toggleServerSeen toggles \Seen on k random messages spread over the
// corpus folders, as another mail client would.
func toggleServerSeen(b *testing.B, c *imapclient.Client, rng *rand.Rand, k int) {
	folders := corpus.DefaultFolders
	for i, f := range folders {
		if _, err := c.Select(f, nil).Wait(); err != nil {
			b.Fatal(err)
		}
		fd, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			b.Fatal(err)
		}
		want := k / len(folders)
		if i == 0 {
			want += k % len(folders)
		}
		var seen, unseen imap.UIDSet
		for _, j := range rng.Perm(len(fd))[:min(want, len(fd))] {
			if slices.Contains(fd[j].Flags, imap.FlagSeen) {
				seen.AddNum(fd[j].UID)
			} else {
				unseen.AddNum(fd[j].UID)
			}
		}
		for _, st := range []struct {
			set imap.UIDSet
			op  imap.StoreFlagsOp
		}{{seen, imap.StoreFlagsDel}, {unseen, imap.StoreFlagsAdd}} {
			if len(st.set) == 0 {
				continue
			}
			if err := c.Store(st.set, &imap.StoreFlags{Op: st.op, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// toggleLocalSeen toggles S on k random files (renames in cur/), as mutt
// or notmuch would.
func (e *env) toggleLocalSeen(rng *rand.Rand, k int) {
	type folder struct {
		d  *maildir.Dir
		es []maildir.Entry
	}
	var fs []folder
	for _, f := range corpus.DefaultFolders {
		fs = append(fs, folder{e.dir(f), e.entries(f)})
	}
	done := map[string]bool{}
	for len(done) < k {
		f := fs[rng.IntN(len(fs))]
		x := f.es[rng.IntN(len(f.es))]
		if done[x.Key] {
			continue
		}
		done[x.Key] = true
		if _, err := f.d.SetFlags(x, x.Flags^maildir.FlagSeen); err != nil {
			e.t.Fatal(err)
		}
	}
}
