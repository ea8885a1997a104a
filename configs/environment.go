package configs

import (
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// envCheck is a value whose use depends on the machine the file is used
// on rather than on the file: a ca_file or [serve] cert_file to read, a
// password_env to find in the environment. Load records them;
// CheckEnvironment tries them.
type envCheck struct {
	key    string // dotted key path, as errors name it
	line   int
	caFile string // ca_file: the absolute path
	env    string // password_env: the variable
	// [serve] cert_file: the absolute paths of the certificate and its key
	certFile, keyFile string
}

// note records an environment check for key k of t.
func (t *table) note(k string, c envCheck) {
	if t == nil {
		return
	}
	c.key, c.line = t.key(k), t.line(k)
	t.d.env = append(t.d.env, c)
}

// CheckEnvironment tries what the file refers to outside itself, as a run
// would use it: each ca_file must be readable and hold a PEM certificate,
// [serve] cert_file and key_file a certificate and its key, each
// password_env must be set and not empty. Every problem is one Error
// naming the key and its line; nil when all is well. `postfach config
// check` runs it; a run finds the same problems when it uses the value.
func (c *Config) CheckEnvironment() ErrorList {
	var errs ErrorList
	for _, x := range c.env {
		var msg string
		switch {
		case x.caFile != "":
			msg = checkCAFile(x.caFile)
		case x.certFile != "":
			msg = checkKeyPair(x.certFile, x.keyFile)
		case x.env != "":
			if v, ok := os.LookupEnv(x.env); !ok {
				msg = fmt.Sprintf("environment variable %s is not set here", x.env)
			} else if v == "" {
				msg = fmt.Sprintf("environment variable %s is empty here", x.env)
			}
		}
		if msg != "" {
			errs = append(errs, &Error{File: c.name, Line: x.line, Key: x.key, Msg: msg})
		}
	}
	errs.sort()
	return errs
}

// checkCAFile returns what is wrong with a CA file, or "".
func checkCAFile(path string) string {
	pem, err := os.ReadFile(path)
	if err != nil {
		return strings.TrimPrefix(err.Error(), "open ")
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return fmt.Sprintf("%s holds no PEM certificate", path)
	}
	return ""
}
