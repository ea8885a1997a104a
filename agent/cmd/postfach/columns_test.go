package main

import (
	"strings"
	"testing"

	"github.com/rivo/uniseg"
)

// TestColumns: cells line up by their width on a terminal, double-width
// characters included; the last cell is not padded.
func TestColumns(t *testing.T) {
	var c columns
	c.add("2026-01-02 10:00", "山田太郎 <yamada@example.jp>", "会議の件", "1")
	c.add("2026-01-01 09:00", "Bob <bob@example.org>", "Re: meeting", "22")
	var b strings.Builder
	if err := c.writeTo(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%q", b.String())
	}
	// The third column starts at the same display column on both lines.
	at := func(line, cell string) int { return uniseg.StringWidth(line[:strings.LastIndex(line, cell)]) }
	if a, b := at(lines[0], "会議の件"), at(lines[1], "Re: meeting"); a != b {
		t.Errorf("third column at %d and %d:\n%s", a, b, strings.Join(lines, "\n"))
	}
	if a, b := at(lines[0], " 1")+1, at(lines[1], " 22")+1; a != b {
		t.Errorf("last column at %d and %d", a, b)
	}
	if strings.HasSuffix(lines[1], " ") {
		t.Errorf("last cell padded: %q", lines[1])
	}
}
