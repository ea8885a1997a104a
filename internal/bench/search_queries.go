package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/postfach/postfach/internal/corpus"
)

// searchQuery is one query of the search scenario in both tools' syntax.
type searchQuery struct {
	Name     string `json:"name"`     // what it exercises
	Postfach string `json:"postfach"` // postfach's query language (issue 13)
	Notmuch  string `json:"notmuch"`  // the same in notmuch's; "" if it has none
	// Plain: the query is plain words, which postfach's search took
	// before the query language.
	Plain bool `json:"plain"`
	// Note says where the semantics differ; without one both tools must
	// find the same messages (the smoke test checks it).
	Note string `json:"note,omitempty"`
}

// searchQueries are the 20 queries, their words taken from the corpus's
// vocabulary by frequency rank (so they occur as often as intended with
// any dictionary), their dates from the corpus's span, their folders as
// the store holds them (dirs: folder name -> directory below store).
func searchQueries(v *corpus.Vocabulary, n int, dirs map[string]string, store string) []searchQuery {
	// A word of at least min letters at or after rank, each word once.
	// Words of the attachments' file names are left out: notmuch finds
	// those names by free text, postfach by attachment: only.
	used := map[string]bool{"invoice": true, "report": true, "budget": true, "slides": true,
		"photos": true, "scan": true, "notes": true, "invite": true, "meeting": true}
	long := func(rank, min int) string {
		for r := rank; ; r++ {
			w, _ := v.EnglishWord(r)
			if (len(w) >= min && !used[w]) || r >= v.EnglishWords()-1 {
				used[w] = true
				return w
			}
		}
	}
	accented := func(rank int) string {
		for r := rank; r < v.GermanWords(); r++ {
			if w, _ := v.GermanWord(r); strings.ContainsAny(w, "äöüß") {
				return w
			}
		}
		return "Grüße"
	}
	common, common2 := long(100, 5), long(140, 5)
	medium, medium2 := long(400, 5), long(600, 5)
	rare := long(20000, 6)
	pre := long(800, 8)
	pre = pre[:5]
	subj := long(120, 5)
	umlaut := accented(300)

	// Dates: the months from 40% to 50% of the corpus's span.
	from, to := corpus.NaturalDate(n*2/5), corpus.NaturalDate(n/2)
	fromMonth := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	toMonth := time.Date(to.Year(), to.Month(), 1, 0, 0, 0, 0, time.UTC)
	lastDay := toMonth.AddDate(0, 1, -1)
	pfDates := fmt.Sprintf("date:%s..%s", fromMonth.Format("2006-01"), toMonth.Format("2006-01"))
	nmDates := fmt.Sprintf("date:%s..%s", fromMonth.Format("2006-01-02"), lastDay.Format("2006-01-02"))

	folder := func(name string) string {
		rel, err := filepath.Rel(store, dirs[name])
		if err != nil || dirs[name] == "" {
			return name
		}
		return filepath.ToSlash(rel)
	}
	quote := func(s string) string { return `"` + s + `"` }
	who, who2, who3 := corpus.Correspondent(0), corpus.Correspondent(1), corpus.Correspondent(2)

	stem := "notmuch: words quoted, so not stemmed, as postfach's (unquoted they match other forms too); notmuch also finds words in attachment file names"
	return []searchQuery{
		{Name: "common word", Postfach: common, Notmuch: quote(common), Plain: true, Note: stem},
		{Name: "rare word", Postfach: rare, Notmuch: quote(rare), Plain: true, Note: stem},
		{Name: "two words", Postfach: common2 + " " + medium, Notmuch: quote(common2) + " and " + quote(medium), Plain: true, Note: stem},
		{Name: "phrase", Postfach: `"looking forward to"`, Notmuch: `"looking forward to"`},
		{Name: "from:", Postfach: "from:" + who.Email, Notmuch: "from:" + who.Email},
		{Name: "from: + word", Postfach: "from:" + who2.Email + " " + common, Notmuch: "from:" + who2.Email + " and " + quote(common)},
		{Name: "cc:", Postfach: "cc:" + who3.Email, Notmuch: "to:" + who3.Email, Note: "notmuch has no cc:; its to: matches To and Cc, so also mail sent to them"},
		{Name: "subject:", Postfach: "subject:" + subj, Notmuch: "subject:" + quote(subj)},
		{Name: "date range", Postfach: pfDates, Notmuch: nmDates},
		{Name: "word + dates", Postfach: medium2 + " " + pfDates, Notmuch: quote(medium2) + " and " + nmDates},
		{Name: "folder", Postfach: "folder:Archive", Notmuch: "folder:" + quote(folder("Archive"))},
		{Name: "flag", Postfach: "flag:flagged", Notmuch: "tag:flagged"},
		{Name: "unread in folder", Postfach: "folder:INBOX -flag:seen", Notmuch: "folder:" + quote(folder("INBOX")) + " and tag:unread"},
		{Name: "OR", Postfach: medium + " OR " + medium2, Notmuch: quote(medium) + " or " + quote(medium2)},
		{Name: "NOT", Postfach: common + " NOT " + common2, Notmuch: quote(common) + " and not " + quote(common2)},
		{Name: "prefix", Postfach: pre + "*", Notmuch: pre + "*"},
		{Name: "has:attachment", Postfach: "has:attachment", Notmuch: "tag:attachment"},
		{Name: "attachment name", Postfach: "attachment:rechnung", Notmuch: "attachment:rechnung"},
		{Name: "accented word", Postfach: umlaut, Notmuch: quote(strings.ToLower(umlaut)), Plain: true,
			Note: "postfach folds accents (finds the word without them too), notmuch does not"},
		{Name: "size", Postfach: "size:>200k", Notmuch: "", Note: "notmuch cannot search by size"},
	}
}

// toolResult is one tool's result for one query.
type toolResult struct {
	Runs   []time.Duration `json:"-"`
	Median time.Duration   `json:"-"`
	CPU    []time.Duration `json:"-"` // user+sys of each run
	// MedianCPU is the median CPU time (user+sys): on a loaded machine
	// the wall time is mostly waiting for a CPU.
	MedianCPU time.Duration `json:"-"`
	Hits      int           `json:"hits"`     // results printed with --limit 50 (notmuch: threads)
	All       int           `json:"all_hits"` // messages matching, untimed run without limit; -1 unknown
	Error     string        `json:"error,omitempty"`
	ids       []string
}

func (t toolResult) MarshalJSON() ([]byte, error) {
	runs := make([]float64, len(t.Runs))
	for i, r := range t.Runs {
		runs[i] = r.Seconds() * 1000
	}
	type plain toolResult
	return json.Marshal(struct {
		plain
		RunsMS      []float64 `json:"runs_ms"`
		MedianMS    float64   `json:"median_ms"`
		MedianCPUMS float64   `json:"median_cpu_ms"`
	}{plain(t), runs, t.Median.Seconds() * 1000, t.MedianCPU.Seconds() * 1000})
}

func (t toolResult) brief() string {
	if t.Error != "" {
		return "error: " + t.Error
	}
	if len(t.Runs) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f ms (%d hits, %d in all)", t.Median.Seconds()*1000, t.Hits, t.All)
}

// queryResult is a query's row in the report.
type queryResult struct {
	Query    searchQuery `json:"query"`
	Postfach toolResult  `json:"postfach"`
	Notmuch  toolResult  `json:"notmuch"`
	Ratio    float64     `json:"ratio,omitempty"`     // postfach / notmuch, median wall
	CPURatio float64     `json:"cpu_ratio,omitempty"` // postfach / notmuch, median CPU
	// Agree compares every hit by Message-ID: "same", or how many only
	// one tool found; "" when not compared.
	Agree string `json:"agree,omitempty"`
}

// runQuery times q repeat times per tool, alternating which goes first,
// then counts and compares all hits, untimed. A tool's error ends its
// runs and goes into the result.
func runQuery(ctx context.Context, pf *pfSearcher, nm *notmuchSearcher, q searchQuery, repeat int) queryResult {
	res := queryResult{Query: q}
	res.Postfach.All, res.Notmuch.All = -1, -1
	tools := []struct {
		res  *toolResult
		argv []string
		skip bool
	}{
		{&res.Postfach, pf.searchArgv(q.Postfach, 50), false},
		{&res.Notmuch, nm.searchArgv(q.Notmuch, 50), q.Notmuch == ""},
	}
	for r := range repeat {
		for k := range tools {
			t := tools[(k+r)%2]
			if t.skip || t.res.Error != "" {
				continue
			}
			s, out, err := runProcess(ctx, pf.dir, t.argv...)
			if err != nil {
				t.res.Error = firstLine(err)
				continue
			}
			t.res.Runs = append(t.res.Runs, s.Wall)
			t.res.CPU = append(t.res.CPU, s.User+s.Sys)
			if r == 0 {
				if t.res == &res.Postfach {
					t.res.Hits, _, err = pf.hits(out)
				} else {
					t.res.Hits, err = jsonArrayLen(out)
				}
				if err != nil {
					t.res.Error = firstLine(err)
				}
			}
		}
	}
	for _, t := range tools {
		if len(t.res.Runs) > 0 {
			t.res.Median, t.res.MedianCPU = medianDuration(t.res.Runs), medianDuration(t.res.CPU)
		}
	}
	if res.Postfach.Median > 0 && res.Notmuch.Median > 0 {
		res.Ratio = res.Postfach.Median.Seconds() / res.Notmuch.Median.Seconds()
	}
	if res.Postfach.MedianCPU > 0 && res.Notmuch.MedianCPU > 0 {
		res.CPURatio = res.Postfach.MedianCPU.Seconds() / res.Notmuch.MedianCPU.Seconds()
	}
	// Every hit, untimed.
	if res.Postfach.Error == "" {
		_, out, err := runProcess(ctx, pf.dir, pf.searchArgv(q.Postfach, 1000000)...)
		if err == nil {
			res.Postfach.All, res.Postfach.ids, err = pf.hits(out)
		}
		if err != nil {
			res.Postfach.Error = "all hits: " + firstLine(err)
		}
	}
	if q.Notmuch != "" && res.Notmuch.Error == "" {
		_, out, err := runProcess(ctx, nm.dir, nm.argv("search", "--format=json", "--output=messages", q.Notmuch)...)
		if err == nil {
			err = json.Unmarshal(out, &res.Notmuch.ids)
			res.Notmuch.All = len(res.Notmuch.ids)
		}
		if err != nil {
			res.Notmuch.Error = "all hits: " + firstLine(err)
		}
	}
	if pf.json && res.Postfach.All >= 0 && res.Notmuch.All >= 0 {
		res.Agree = agreement(res.Postfach.ids, res.Notmuch.ids)
	}
	return res
}

// agreement compares two sets of Message-IDs.
func agreement(a, b []string) string {
	in := map[string]int{}
	for _, id := range a {
		in[id] |= 1
	}
	for _, id := range b {
		in[id] |= 2
	}
	var onlyA, onlyB int
	for _, v := range in {
		switch v {
		case 1:
			onlyA++
		case 2:
			onlyB++
		}
	}
	if onlyA == 0 && onlyB == 0 {
		return "same"
	}
	return fmt.Sprintf("%d only postfach, %d only notmuch", onlyA, onlyB)
}

func jsonArrayLen(out []byte) (int, error) {
	var v []json.RawMessage
	if err := json.Unmarshal(out, &v); err != nil {
		return 0, fmt.Errorf("notmuch --format=json: %v", err)
	}
	return len(v), nil
}

func medianDuration(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// firstLine is the first line of an error that runProcess made (its
// command, exit status, then the tool's output): the command's error
// line and the tool's first line of stderr, shortened.
func firstLine(err error) string {
	msg := err.Error()
	line, rest, _ := strings.Cut(msg, "\n")
	if _, after, ok := strings.Cut(rest, "stderr:\n"); ok {
		if l, _, _ := strings.Cut(after, "\n"); strings.TrimSpace(l) != "" {
			line = l
		}
	}
	if utf8.RuneCountInString(line) > 120 {
		line = string([]rune(line)[:117]) + "..."
	}
	return line
}
