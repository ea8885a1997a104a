package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/postfach/postfach/internal/corpus"
)

// The corpora of the imap, twoway and pop3 scenarios (-corpus): "real",
// the default, has the size mix of real mail (corpus.Options.RealSizes:
// text bodies log-normal around 6 KB, 8% multipart/alternative, 3% with
// one or two attachments of 100 KB to 5 MB, about 79 KB per message);
// "small" is the default corpus of package corpus (a few KB per message),
// the bench's corpus before issue 14.
const (
	corpusReal  = "real"
	corpusSmall = "small"
)

// addCorpusFlag registers -corpus.
func addCorpusFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "corpus", corpusReal, `corpus: "real" (size mix of real mail, ~79 KB per message) or "small" (a few KB per message)`)
}

// corpusOptions are the generator options of the corpus named by -corpus,
// with folders (nil: the default folders).
func corpusOptions(name string, folders []string) (corpus.Options, error) {
	switch name {
	case corpusReal:
		return corpus.Options{Folders: folders, RealSizes: true}, nil
	case corpusSmall:
		return corpus.Options{Folders: folders}, nil
	}
	return corpus.Options{}, fmt.Errorf("-corpus %q: want %q or %q", name, corpusReal, corpusSmall)
}

// corpusDescription says which corpus ran, for the report.
func corpusDescription(opts corpus.Options) string {
	if opts.RealSizes {
		return "real: size mix of real mail (text log-normal around 6 KB, 8% multipart/alternative, 3% with 1-2 attachments of 100 KB-5 MB)"
	}
	return "small: a few KB per message (package corpus's default mix)"
}

// share is a count given as a number ("100") or as a share of the corpus
// ("1%"), for -changes.
type share struct {
	n   int
	pct float64
	of  bool // pct applies
}

func (s *share) String() string {
	if s.of {
		return strconv.FormatFloat(s.pct, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(s.n)
}

func (s *share) Set(v string) error {
	if p, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f < 0 || f > 100 || math.IsNaN(f) {
			return fmt.Errorf("want N or P%% (0 <= P <= 100)")
		}
		*s = share{pct: f, of: true}
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fmt.Errorf("want N >= 0 or P%%")
	}
	*s = share{n: n}
	return nil
}

// count is the share of total messages: a percentage rounds to the
// nearest, and is at least 1 when it is not 0.
func (s share) count(total int) int {
	if !s.of {
		return s.n
	}
	if s.pct == 0 {
		return 0
	}
	return max(1, int(math.Round(float64(total)*s.pct/100)))
}

// estimateBytes is about how many bytes n messages of the corpus take in
// one Maildir: the generated size (real: the documented average; small: the
// first messages' average) plus a file system block's half per file.
func estimateBytes(seed int64, n int, opts corpus.Options) int64 {
	per := int64(corpus.RealAverageBytes)
	if !opts.RealSizes {
		k := min(n, 200)
		var sum int64
		for i := range k {
			sum += int64(len(corpus.At(seed, i, opts).Raw))
		}
		per = sum/int64(max(k, 1)) + 1
	}
	return int64(n) * (per + 2048)
}

// checkDisk refuses a run whose copies of the corpus would not fit on the
// file system of dir: copies Maildirs of n messages each (Dovecot's and
// each tool's), with a tenth to spare.
func checkDisk(dir string, seed int64, n int, opts corpus.Options, copies int, what string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("checking free space in %s: %w", dir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	one := estimateBytes(seed, n, opts)
	need := one * int64(copies) * 11 / 10
	if need > free {
		return fmt.Errorf("not enough disk space in %s: %s free, this run needs about %s (%d messages, about %s per copy, %d copies: %s); free space, choose -dir on a larger file system, or lower -messages or -runs",
			dir, gib(free), gib(need), n, gib(one), copies, what)
	}
	return nil
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

// seedAll writes messages 0..n-1 of the corpus into the first server's
// user's Maildir in one pass, and returns what was seeded and what every
// account must then hold (without UIDs). The other users (same Dovecot)
// get the same files as hard links: the same UIDs in the same order, no
// second generation, no second copy on disk (Dovecot never rewrites a
// message file; a flag change renames one name, an expunge unlinks one).
func seedAll(ctx context.Context, srvs []*dovecotServer, seed int64, n int, opts corpus.Options) (corpusInfo, mirror, error) {
	info := corpusInfo{Folders: map[string]int{}}
	want := mirror{}
	for _, f := range opts.Folders {
		want[folderName(f)] = map[string]mirrorMsg{}
	}
	w := srvs[0].d.MaildirWriter(srvs[0].user)
	err := eachParallel(seed, n, opts, func(m corpus.Message) error {
		if err := ctx.Err(); err != nil { // interrupted: a large corpus takes minutes
			return err
		}
		f := folderName(m.Folder)
		info.Messages++
		info.Bytes += int64(len(m.Raw))
		info.Folders[f]++
		if want[f] == nil {
			want[f] = map[string]mirrorMsg{}
		}
		want[f][m.MessageID] = expectMessage(m, true)
		return w.Write(m)
	})
	if err != nil {
		return info, nil, err
	}
	src := srvs[0].d.MailDir(srvs[0].user)
	for _, s := range srvs[1:] {
		if err := linkTree(src, s.d.MailDir(s.user)); err != nil {
			return info, nil, fmt.Errorf("seeding %s: %w", s.user, err)
		}
	}
	return info, want, nil
}

// eachParallel is corpus.Each with the messages generated on every CPU,
// a few ahead of fn, which still gets them one at a time, in order.
// Generating the real corpus is most of the seeding's CPU time.
func eachParallel(seed int64, n int, opts corpus.Options, fn func(corpus.Message) error) error {
	workers := runtime.NumCPU()
	results := make(chan chan corpus.Message, 2*workers)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(results)
		sem := make(chan struct{}, workers)
		for i := range n {
			c := make(chan corpus.Message, 1)
			select {
			case results <- c:
			case <-done:
				return
			}
			sem <- struct{}{}
			go func() {
				c <- corpus.At(seed, i, opts)
				<-sem
			}()
		}
	}()
	for c := range results {
		if err := fn(<-c); err != nil {
			return err
		}
	}
	return nil
}

// linkTree recreates the tree src at dst: directories with the same mode
// and owner, files as hard links.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if !d.IsDir() {
			return os.Link(path, to)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Mkdir(to, fi.Mode().Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
			return os.Lchown(to, int(st.Uid), int(st.Gid))
		}
		return nil
	})
}
