package imapsync

import (
	"fmt"
	"slices"
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
	row := func(id int, file string) *index.Message {
		e, _ := maildir.ParseName(file[4:])
		return &index.Message{ID: index.MessageID(id), Key: e.Key, File: file, Partial: true}
	}
	entries := []maildir.Entry{
		entry("cur", "k5,U=5:2,S"),  // unchanged
		entry("new", "k9"),          // unknown
		entry("cur", "k3,U=3:2,FS"), // renamed (F added)
		entry("cur", "k1,U=1:2,"),   // unchanged
		entry("cur", "k3:2,S"),      // a second file with key k3: left alone
		entry("cur", "k0:2,"),       // unknown
	}
	rows := []*index.Message{
		row(5, "cur/k5,U=5:2,S"),
		row(1, "cur/k1,U=1:2,"),
		row(3, "cur/k3,U=3:2,S"),
		row(7, "cur/k7,U=7:2,"), // gone
	}
	d := diffListing(entries, rows)
	keys := func(ms []*index.Message) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.Key)
		}
		return fmt.Sprint(s)
	}
	if got := keys(d.present); got != "[k1 k3 k5]" {
		t.Errorf("present %s", got)
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
	if len(d.renamed) != 1 || d.renamed[0].m.Key != "k3" || d.renamed[0].e.Name != "k3,U=3:2,FS" {
		t.Errorf("renamed %+v", d.renamed)
	}
	if d.clean() {
		t.Error("clean")
	}
	if !diffListing([]maildir.Entry{entry("cur", "k1,U=1:2,")}, []*index.Message{row(1, "cur/k1,U=1:2,")}).clean() {
		t.Error("an unchanged folder is not clean")
	}
	if !diffListing(nil, nil).clean() {
		t.Error("an empty folder is not clean")
	}
}
