package localauth

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultUsername is the generated login's user name.
const DefaultUsername = "postfach"

// Credentials is the local login clients use.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// File is where the generated values are stored; "" when both were
	// configured (nothing generated).
	File string `json:"-"`
}

// LoadCredentials returns the local login of the store rooted at root:
// username and password as configured, or for each that is "" the
// generated value, stored in <root>/.postfach/local-credentials (made on
// first use: the user name "postfach" and a random password).
func LoadCredentials(root, username, password string) (*Credentials, error) {
	c := &Credentials{Username: username, Password: password}
	if username != "" && password != "" {
		return c, nil
	}
	dir := StateDir(root)
	path := filepath.Join(dir, CredentialsFile)
	var stored Credentials
	err := withLock(dir, func() error {
		data, err := readPrivate(path)
		if err != nil {
			return err
		}
		if data != nil {
			if err := json.Unmarshal(data, &stored); err != nil || stored.Username == "" || stored.Password == "" {
				return fmt.Errorf("%s is damaged (remove it: postfach makes a new login, which your clients must then be given)", path)
			}
			return nil
		}
		pw, err := newPassword()
		if err != nil {
			return err
		}
		stored = Credentials{Username: DefaultUsername, Password: pw}
		data, _ = json.MarshalIndent(stored, "", "  ")
		return writePrivate(path, append(data, '\n'))
	})
	if err != nil {
		return nil, fmt.Errorf("local credentials: %w", err)
	}
	if c.Username == "" {
		c.Username = stored.Username
	}
	if c.Password == "" {
		c.Password = stored.Password
	}
	c.File = path
	return c, nil
}

// newPassword returns 160 random bits as 32 lower-case base32 characters.
func newPassword() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b)), nil
}
