package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeliver(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	msgs := []string{"Subject: one\n\nbody\n", "Subject: two\n\nbody\n"}
	for _, m := range msgs {
		if err := deliver(dir, strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(tmp) != 0 {
		t.Errorf("tmp/ holds %d files, want none", len(tmp))
	}
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(msgs) {
		t.Fatalf("new/ holds %d files, want %d", len(ents), len(msgs))
	}
	got := map[string]bool{}
	for _, e := range ents {
		if strings.ContainsAny(e.Name(), ":/") {
			t.Errorf("bad Maildir name %q", e.Name())
		}
		data, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[string(data)] = true
	}
	for _, m := range msgs {
		if !got[m] {
			t.Errorf("message %q not delivered", m)
		}
	}
	if err := deliver(filepath.Join(dir, "missing"), strings.NewReader("x")); err == nil {
		t.Errorf("delivery into a missing Maildir succeeded")
	}
}
