package imapsync

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

func TestDiffListing(t *testing.T) {
	entry := func(sub, name string) maildir.Entry {
		e, _ := maildir.ParseName(name)
		e.Sub = sub
		return e
	}
	row := func(id int, file string) index.FileRow {
		e, _ := maildir.ParseName(file[4:])
		return index.FileRow{ID: index.MessageID(id), UID: uint32(id), Key: e.Key, File: file}
	}
	entries := []maildir.Entry{
		entry("cur", "k5,U=5:2,S"),  // unchanged
		entry("new", "k9"),          // unknown
		entry("cur", "k3,U=3:2,FS"), // renamed (F added)
		entry("cur", "k1,U=1:2,"),   // unchanged
		entry("cur", "k3:2,S"),      // a second file with key k3: left alone
		entry("cur", "k0:2,"),       // unknown
		entry("cur", "k8:2,"),       // not upstream yet
	}
	rows := []index.FileRow{
		row(5, "cur/k5,U=5:2,S"),
		row(1, "cur/k1,U=1:2,"),
		row(3, "cur/k3,U=3:2,S"),
		row(7, "cur/k7,U=7:2,"), // gone
		{ID: 8, Key: "k8", File: "cur/k8:2,"},
	}
	// A chunk at a time (as scanFolder reads them) is the same.
	for n := 1; n <= len(rows); n++ {
		sorted := slices.Clone(rows)
		slices.SortFunc(sorted, func(a, b index.FileRow) int { return strings.Compare(a.Key, b.Key) })
		c := newRowDiffer(slices.Clone(entries))
		for len(sorted) > 0 {
			k := min(n, len(sorted))
			c.rows(sorted[:k])
			sorted = sorted[k:]
		}
		got, want := c.done(), diffFileRows(slices.Clone(entries), slices.Clone(rows))
		if fmt.Sprint(*got) != fmt.Sprint(*want) {
			t.Errorf("chunks of %d: %+v, want %+v", n, *got, *want)
		}
	}
	d := diffFileRows(entries, rows)
	keys := func(ms []index.FileRow) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.Key)
		}
		return fmt.Sprint(s)
	}
	// Present: upstream under their recorded names by id and UID alone,
	// the others (renamed, not upstream) whole.
	if got := keys(d.present); got != "[k3 k8]" {
		t.Errorf("present %s", got)
	}
	if !slices.Equal(d.upstream, []idUID{{1, 1}, {5, 5}}) {
		t.Errorf("upstream %v", d.upstream)
	}
	if len(d.gone) != 1 || d.gone[0] != row(7, "cur/k7,U=7:2,") {
		t.Errorf("gone %+v", d.gone)
	}
	if got := keys(d.gone); got != "[k7]" {
		t.Errorf("gone %s", got)
	}
	var unknown []string
	for _, e := range d.unknown {
		unknown = append(unknown, e.Name)
	}
	if !slices.Equal(unknown, []string{"k0:2,", "k9"}) {
		t.Errorf("unknown %q", unknown)
	}
	if len(d.renamed) != 1 || d.present[d.renamed[0].i] != row(3, "cur/k3,U=3:2,S") || d.renamed[0].e.Name != "k3,U=3:2,FS" {
		t.Errorf("renamed %+v", d.renamed)
	}
	if d.clean() {
		t.Error("clean")
	}
	// Whole rows (diffMessages, reconcile's path without a scan) the same.
	var ms []*index.Message
	for _, r := range rows {
		ms = append(ms, &index.Message{ID: r.ID, UID: r.UID, Key: r.Key, File: r.File})
	}
	dm := diffMessages(slices.Clone(entries), ms)
	var present, gone, unknownM []string
	for _, m := range dm.present {
		present = append(present, m.Key)
	}
	for _, m := range dm.gone {
		gone = append(gone, m.Key)
	}
	for _, e := range dm.unknown {
		unknownM = append(unknownM, e.Name)
	}
	if fmt.Sprint(present, gone, unknownM) != "[k1 k3 k5 k8] [k7] [k0:2, k9]" ||
		len(dm.renamed) != 1 || dm.present[dm.renamed[0].i].Key != "k3" || dm.renamed[0].e.Name != "k3,U=3:2,FS" {
		t.Errorf("diffMessages: present %v, gone %v, unknown %q, renamed %+v", present, gone, unknownM, dm.renamed)
	}
	if !diffFileRows([]maildir.Entry{entry("cur", "k1,U=1:2,")}, []index.FileRow{row(1, "cur/k1,U=1:2,")}).clean() {
		t.Error("an unchanged folder is not clean")
	}
	if !diffFileRows(nil, nil).clean() {
		t.Error("an empty folder is not clean")
	}
}
