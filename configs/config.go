package configs

import (
	_ "embed"
	"os"
	"path/filepath"
)

// Example is the commented starter config written by `postfach init`. It
// passes Load as it is.
//
//go:embed example.toml
var Example []byte

// Config is a loaded, complete and valid config file.
type Config struct {
	File     string // absolute path of the file it was loaded from
	Store    Store
	Accounts []Account // in the order of the file
	Serve    Serve
	Backup   Backup
	// Warnings are problems that do not stop postfach but may not do
	// what the file's author expects (folder_map targets that can
	// collide), sorted by line; `postfach config check` prints them.
	Warnings ErrorList

	name string     // the file as errors name it (the path given to Load)
	env  []envCheck // see CheckEnvironment
}

// Store is the [store] table.
type Store struct {
	// Path is the Maildir root, absolute; default "~/Mail". Each account
	// gets the folder <Path>/<account name>; the index lives in
	// <Path>/.postfach.
	Path string
}

// Backup is the [backup] table.
type Backup struct {
	Path string // absolute; default "~/MailBackups"
	// Schedule is "" (no scheduled backups, the default), "hourly",
	// "daily HH:MM" or "weekly DAY HH:MM" with DAY mon..sun, in local time.
	// See Next.
	Schedule string
	Keep     int // backups to keep, default 14; 0 keeps all
}

// Account returns the account with the given name.
func (c *Config) Account(name string) (*Account, bool) {
	for i := range c.Accounts {
		if c.Accounts[i].Name == name {
			return &c.Accounts[i], true
		}
	}
	return nil, false
}

// DefaultPath returns $XDG_CONFIG_HOME/postfach/config.toml, or
// ~/.config/postfach/config.toml when XDG_CONFIG_HOME is unset or not
// absolute (as the XDG spec asks). It returns a relative path only when the
// home directory is unknown too.
func DefaultPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "postfach", "config.toml")
}
