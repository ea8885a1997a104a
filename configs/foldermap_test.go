package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestFolderMapWarnings: folder_map targets that can land two server
// folders in one local folder are warnings, one line each with file:line,
// and the config still loads; a config without such targets has none.
func TestFolderMapWarnings(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"none", account + "[accounts.folder_map]\n\"[Gmail]/Sent Mail\" = \"Sent\"\n\"Sent\" = \"Sent (server)\"\nINBOX = \"Posteingang\"\nPosteingang = \"INBOX\"\n", nil},
		{"INBOX as target", account + "[accounts.folder_map]\nPosteingang = \"INBOX\"\n", []string{
			`FILE:8: accounts[1].folder_map.Posteingang: warning: maps to "INBOX", where the server's own INBOX lands too (every server has one): postfach would sync neither; pick another local name`}},
		{"INBOX spelled otherwise", account + "[accounts.folder_map]\nInbox = \"Old\"\nPosteingang = \"INBOX\"\n\"inbox/Sub\" = \"Sub\"\n", []string{
			`FILE:8: accounts[1].folder_map.Inbox: warning: never matches: postfach names the server's INBOX "INBOX" whatever its spelling; write "INBOX"`,
			`FILE:9: accounts[1].folder_map.Posteingang: warning: maps to "INBOX", where the server's own INBOX lands too (every server has one): postfach would sync neither; pick another local name`,
			`FILE:10: accounts[1].folder_map."inbox/Sub": warning: never matches: postfach names the server's INBOX "INBOX" whatever its spelling; write "INBOX/Sub"`}},
		{"target the folders list names", account + "folders = [\"INBOX\", \"Sent\", \"Archiv*\"]\n[accounts.folder_map]\n\"Sent Items\" = \"Sent\"\n\"Old\" = \"Archive\"\n", []string{
			`FILE:9: accounts[1].folder_map."Sent Items": warning: maps to "Sent", which the folders list names: should the server have a folder "Sent" too, both land in one local folder and postfach syncs neither; map "Sent" to another local name as well`}},
		{"case only", account + "folders = [\"*\", \"!junk\", \"Lists\"]\n[accounts.folder_map]\n\"Sent Items\" = \"Sent\"\n\"Gesendet\" = \"sent\"\nBriefe = \"inbox\"\nListen = \"lists\"\n", []string{
			`FILE:10: accounts[1].folder_map.Gesendet: warning: maps to "sent", which differs from "Sent" (line 9) only in case: one folder on a case-insensitive file system (macOS, Windows)`,
			`FILE:11: accounts[1].folder_map.Briefe: warning: maps to "inbox", which differs from "INBOX" only in case: one folder on a case-insensitive file system (macOS, Windows)`,
			`FILE:12: accounts[1].folder_map.Listen: warning: maps to "lists", which differs from "Lists" only in case: one folder on a case-insensitive file system (macOS, Windows)`}},
		{"look-alike of /", account + "[accounts.folder_map]\n\"Projekte.2024\" = \"Projekte\u22152024\"\n", []string{
			`FILE:8: accounts[1].folder_map."Projekte.2024": warning: maps to "Projekte∕2024", which holds "∕" (U+2215): postfach writes it locally for a "/" inside a server folder name, so such a server folder would land there too; use another character`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(path, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var got []string
			for _, w := range c.Warnings {
				got = append(got, strings.ReplaceAll(w.Error(), path, "FILE"))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestFolderMapDuplicate: two server folders mapped to one local folder is
// an error naming both lines.
func TestFolderMapDuplicate(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	_, got := load(t, account+"[accounts.folder_map]\n\"Sent Items\" = \"Sent\"\nSent = \"Sent\"\n")
	want := []string{`FILE:9: accounts[1].folder_map.Sent: maps to "Sent" like "Sent Items" (line 8): two server folders in one local folder`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestExampleNoWarnings: the example config, and the documented folder_map
// line in it, give no warning.
func TestExampleNoWarnings(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	doc := strings.Replace(string(Example), `# [accounts.folder_map]`, `[accounts.folder_map]`, 1)
	doc = strings.Replace(doc, `# "[Gmail]/Sent Mail" = "Sent"`, `"[Gmail]/Sent Mail" = "Sent"`, 1)
	if doc == string(Example) {
		t.Fatal("the example has no folder_map line to uncomment")
	}
	for _, d := range []string{string(Example), doc} {
		c, _ := load(t, d)
		if c == nil || len(c.Warnings) > 0 {
			t.Errorf("example: %v", c.Warnings)
		}
	}
}
