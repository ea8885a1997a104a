package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// upstream is the account every peer mirrors.
type upstream struct {
	Host     string
	Port     int
	User     string
	Password string
}

// A peer is one mail sync program in a comparison.
type peer interface {
	// Name is a short name for tables ("postfach", "mbsync").
	Name() string
	// Version says which build or release runs, for the report.
	Version() string
	// Notes describes settings that matter for the comparison (connections,
	// fsync), for the report; may be "".
	Notes() string
	// NewReplica prepares an empty local copy of the account on up in dir,
	// an empty directory the replica owns.
	NewReplica(dir string, up upstream) (replica, error)
}

// A replica is one peer's local copy of the account.
type replica interface {
	// Initial fills the empty replica; Resync brings it up to date again.
	// Each runs the peer once, as a child process, and measures it.
	Initial(ctx context.Context) (sample, error)
	Resync(ctx context.Context) (sample, error)
	// Maildir is the root of the tree the replica keeps its messages in.
	Maildir() string
	// Command is the command line of one sync, as a shell would take it.
	Command() string
	// Folder names the IMAP folder that the Maildir directory rel holds,
	// by the tool's own layout: rel is relative to Maildir(), '/'
	// separated, "." for Maildir() itself. It fails for a directory the
	// tool makes for no folder.
	Folder(rel string) (string, error)
}

// A keywordKeeper is a replica that keeps the messages' IMAP keywords
// (postfach, in its index); its keywords are compared with the server's.
// The others carry none: mbsync does not sync keywords, POP3 has none.
type keywordKeeper interface {
	// Keywords returns the keywords of every message file the replica
	// knows, by the file's path: sorted, space-separated, "" for none.
	Keywords(ctx context.Context) (map[string]string, error)
}

// A tuidAdder is a replica whose tool adds a header line "X-TUID: <12
// characters>" to every message it copies, in either direction, and keeps
// it (mbsync: it finds the copy by it); the verification leaves that one
// line out of the tool's files and of the messages on its server account.
// A migration (migrate.go) may be one too.
type tuidAdder interface {
	AddsTUID() bool
}

func addsTUID(rp any) bool {
	t, ok := rp.(tuidAdder)
	return ok && t.AddsTUID()
}

// A checker is a replica that can also report its content itself (besides
// the Maildir every replica gets verified); the bench compares that report
// with the server.
type checker interface {
	Check(ctx context.Context, want inventory) error
}

// sample is the measurement of one process.
type sample struct {
	Wall      time.Duration // start to exit
	User, Sys time.Duration // CPU time of the process
	MaxRSSKiB int64         // peak resident set size
	ServerCPU time.Duration // CPU time Dovecot spent meanwhile
}

func (s sample) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Wall      float64 `json:"wall_s"`
		User      float64 `json:"user_s"`
		Sys       float64 `json:"sys_s"`
		MaxRSSKiB int64   `json:"max_rss_kib"`
		ServerCPU float64 `json:"server_cpu_s"`
	}{s.Wall.Seconds(), s.User.Seconds(), s.Sys.Seconds(), s.MaxRSSKiB, s.ServerCPU.Seconds()})
}

// runProcess runs argv in dir and measures it. Before starting it flushes
// the dirty pages of everyone else (sync(2)), so that the process's own
// fsyncs are not billed for earlier writes. It fails when the process exits
// with an error, showing the end of its output.
//
// The peak RSS comes from GNU time (-f %M) when it is installed, because the
// rusage of a direct child is useless for it: Go starts children with
// vfork semantics (CLONE_VM), and exec keeps the high-water mark of the old
// address space, the bench's own, as the child's floor. GNU time forks from
// its own small address space (a floor of about 1 MiB). Without GNU time the
// rusage value is used, and the report says it is an upper bound.
func runProcess(ctx context.Context, dir string, argv ...string) (sample, []byte, error) {
	var stdout, stderr bytes.Buffer
	run := argv
	var rssFile string
	if gt := gnuTime(); gt != "" {
		f, err := os.CreateTemp("", "bench-rss-")
		if err != nil {
			return sample{}, nil, err
		}
		f.Close()
		rssFile = f.Name()
		defer os.Remove(rssFile)
		run = append([]string{gt, "-o", rssFile, "-f", "%M"}, argv...)
	}
	cmd := exec.CommandContext(ctx, run[0], run[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	syscall.Sync()
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		return sample{}, nil, err
	}
	err = cmd.Wait()
	s := sample{Wall: time.Since(start)}
	if ps := cmd.ProcessState; ps != nil {
		// GNU time waits for the program: its rusage includes the program's.
		s.User, s.Sys = ps.UserTime(), ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			s.MaxRSSKiB = ru.Maxrss // KiB on Linux
		}
	}
	if rssFile != "" {
		// The last line is %M; a failed program adds a line before it.
		data, rerr := os.ReadFile(rssFile)
		lines := strings.Fields(string(data))
		var kib int64
		if rerr == nil && len(lines) > 0 {
			kib, rerr = strconv.ParseInt(lines[len(lines)-1], 10, 64)
		}
		if rerr != nil && err == nil {
			err = fmt.Errorf("reading the peak RSS from GNU time: %v (%q)", rerr, data)
		}
		s.MaxRSSKiB = kib
	}
	if err != nil {
		return s, stdout.Bytes(), fmt.Errorf("%s: %w\nstdout:\n%s\nstderr:\n%s", shellQuote(argv), err, tail(stdout.String()), tail(stderr.String()))
	}
	return s, stdout.Bytes(), nil
}

// gnuTime is the path of GNU time, or "" when it is not installed.
var gnuTime = sync.OnceValue(func() string {
	bin, err := exec.LookPath("time")
	if err != nil {
		return ""
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "GNU") {
		return ""
	}
	return bin
})

// rssMethod says how the peak RSS is measured, for the report.
func rssMethod() string {
	if gt := gnuTime(); gt != "" {
		return "GNU time -f %M (" + gt + ")"
	}
	return "rusage of the child: an upper bound, at least the bench's own peak RSS (install GNU time for exact values)"
}

// tail returns the last lines of s.
func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 30 {
		lines = append([]string{"..."}, lines[len(lines)-30:]...)
	}
	return strings.Join(lines, "\n")
}

// shellQuote renders argv as a POSIX shell command line.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
