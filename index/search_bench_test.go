package index

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/maildir"
)

// BenchmarkSearchQueries measures 23 typical queries on a store of
// $POSTFACH_SEARCH_N messages (default 50,000) with natural-language-like
// text: words of /usr/share/dict/words (Debian's wamerican) in a Zipf
// distribution, 500 senders, 6 folders over 2 accounts, 2019-2025, a
// tenth with attachments. The store is built once in
// $POSTFACH_SEARCH_DIR (default a temporary directory) and reused when it
// exists there. It reports each query's median time over 7 runs and the
// median of those:
//
//	POSTFACH_SEARCH_DIR=/tmp/searchbench go test -run '^$' -bench SearchQueries -benchtime 1x ./index/
func BenchmarkSearchQueries(b *testing.B) {
	n := 50000
	if s := os.Getenv("POSTFACH_SEARCH_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := os.Getenv("POSTFACH_SEARCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("search-%d.db", n))
	_, statErr := os.Stat(path)
	st, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	words := benchWords(b)
	g := &benchGen{rng: rand.New(rand.NewPCG(1, 2)), words: words}
	g.zipf = rand.NewZipf(g.rng, 1.07, 2, uint64(len(words)-1))
	if statErr != nil {
		start := time.Now()
		g.fill(b, st, n)
		b.Logf("built %d messages in %v", n, time.Since(start))
	}
	// Words at a few ranks of the distribution, and one sender.
	w := func(rank int) string { return words[rank] }
	queries := []string{
		w(3), w(60), w(2000), w(20000),
		w(40) + " " + w(300),
		`"` + w(0) + " " + w(1) + `"`,
		w(500)[:min(4, len(w(500)))] + "*",
		"from:" + benchPerson(7),
		"from:" + benchPerson(7) + " " + w(100),
		"subject:" + w(50),
		"folder:INBOX after:2024-01",
		"folder:INBOX " + w(200),
		"date:2024-01..2024-03 " + w(80),
		"has:attachment " + w(30),
		"attachment:" + w(10),
		"mimetype:application/pdf",
		"flag:flagged " + w(20),
		"-flag:seen folder:INBOX",
		w(150) + " OR " + w(700),
		w(90) + " -" + w(5),
		w(1000) + " OR from:" + benchPerson(3),
		"size:>100k",
		"tag:work " + w(25),
	}
	ctx := context.Background()
	var medians []time.Duration
	for _, qs := range queries {
		q, err := ParseQuery(qs, time.UTC)
		if err != nil {
			b.Fatal(err)
		}
		var times []time.Duration
		var hits int
		for range 7 {
			start := time.Now()
			err := st.Read(ctx, func(tx *ReadTx) error {
				r, err := tx.SearchQuery(q, 50, 0)
				hits = len(r)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
		}
		slices.Sort(times)
		medians = append(medians, times[3])
		b.Logf("%8.2f ms %3d hits  %s", float64(times[3].Microseconds())/1000, hits, qs)
	}
	slices.Sort(medians)
	b.ReportMetric(float64(medians[len(medians)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(medians[len(medians)-1].Microseconds())/1000, "max-ms")
}

func benchWords(b *testing.B) []string {
	f, err := os.Open("/usr/share/dict/words")
	if err != nil {
		b.Fatalf("a word list (Debian's wamerican): %v", err)
	}
	defer f.Close()
	var words []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if w := sc.Text(); !strings.Contains(w, "'") {
			words = append(words, strings.ToLower(w))
		}
	}
	// The frequent words are random words of the list.
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(words), func(i, j int) { words[i], words[j] = words[j], words[i] })
	return words
}

func benchPerson(i int) string { return fmt.Sprintf("person%d@example%d.org", i, i%17) }

type benchGen struct {
	rng   *rand.Rand
	zipf  *rand.Zipf
	words []string
}

func (g *benchGen) text(n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			if i%12 == 0 {
				sb.WriteString(".\n")
			} else {
				sb.WriteByte(' ')
			}
		}
		sb.WriteString(g.words[g.zipf.Uint64()])
	}
	return sb.String()
}

func (g *benchGen) fill(b *testing.B, st *Store, n int) {
	ctx := context.Background()
	var folders []FolderID
	err := st.Write(ctx, func(tx *Tx) error {
		for _, acct := range []string{"work", "home"} {
			id, err := tx.EnsureAccount(acct)
			if err != nil {
				return err
			}
			for _, name := range []string{"INBOX", "Sent", "Lists/go"} {
				f, err := tx.EnsureFolder(id, name, acct+"/"+name)
				if err != nil {
					return err
				}
				folders = append(folders, f.ID)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	span := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix() - t0
	for done := 0; done < n; {
		batch := min(1000, n-done)
		var ms []*NewMessage
		var parts [][]Part
		for i := range batch {
			k := done + i
			m := &NewMessage{}
			m.Folder = folders[g.rng.IntN(len(folders))]
			m.Key = fmt.Sprintf("k%d", k)
			m.File = "cur/" + m.Key + ":2,"
			m.Header.From = fmt.Sprintf("Person %d <%s>", k%500, benchPerson(k%500))
			m.Header.To = fmt.Sprintf("<%s>", benchPerson(g.rng.IntN(500)))
			if g.rng.IntN(3) == 0 {
				m.Header.Cc = fmt.Sprintf("<%s>", benchPerson(g.rng.IntN(500)))
			}
			m.Header.Subject = g.text(3 + g.rng.IntN(6))
			m.Header.Date = time.Unix(t0+g.rng.Int64N(span), 0)
			m.Header.MessageID = m.Key + "@bench"
			m.InternalDate = m.Header.Date
			m.Body = g.text(30 + g.rng.IntN(400))
			m.Size = int64(len(m.Body) + 600)
			var ps []Part
			ps = append(ps, Part{Type: "text/plain"})
			if g.rng.IntN(10) == 0 {
				t := []string{"application/pdf", "image/png", "image/jpeg", "application/zip"}[g.rng.IntN(4)]
				ps = append(ps, Part{Type: t, Name: g.words[g.zipf.Uint64()] + "." + t[strings.IndexByte(t, '/')+1:], Attachment: true})
				m.Size += 20000 + g.rng.Int64N(2<<20)
			}
			if g.rng.IntN(10) < 7 {
				m.Flags |= maildir.FlagSeen
			}
			if g.rng.IntN(20) == 0 {
				m.Flags |= maildir.FlagFlagged
			}
			if g.rng.IntN(10) == 0 {
				m.Keywords = []string{"work"}
			}
			m.DeferText = true
			ms = append(ms, m)
			parts = append(parts, ps)
		}
		err := st.Write(ctx, func(tx *Tx) error {
			ids, err := tx.AddMessages(ms)
			if err != nil {
				return err
			}
			for i := range ms {
				if err := tx.setParts(ids[i], parts[i]); err != nil {
					return err
				}
			}
			for i, m := range ms {
				var names []string
				for _, p := range parts[i] {
					if p.Name != "" {
						names = append(names, p.Name)
					}
				}
				if err := tx.insertText(ids[i], &m.Header, m.Body, names); err != nil {
					return err
				}
			}
			_, err = tx.exec(`DELETE FROM fts_pending`)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		done += batch
	}
	if false {
		b.Fatal(err)
	}
}
