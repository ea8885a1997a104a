package pop3

import (
	"maps"
	"slices"
	"strings"
)

// Caps is a CAPA reply (RFC 2449): capability names, upper-cased, with
// their arguments, such as "SASL": {"PLAIN", "LOGIN"} or "PIPELINING": {}.
type Caps map[string][]string

// Has reports whether the server lists the capability name.
func (c Caps) Has(name string) bool {
	_, ok := c[strings.ToUpper(name)]
	return ok
}

// HasSASL reports whether the server lists the SASL mechanism mech.
func (c Caps) HasSASL(mech string) bool {
	return slices.ContainsFunc(c["SASL"], func(m string) bool { return strings.EqualFold(m, mech) })
}

// Capa returns the server's capabilities. The reply is cached until the
// session changes state (STLS, login), after which the server may list
// different ones. A server that does not know CAPA has none: Capa then
// returns an empty Caps and no error.
func (c *Client) Capa() (Caps, error) {
	if c.caps == nil {
		if err := c.loadCapa(); err != nil {
			return nil, err
		}
	}
	out := maps.Clone(c.caps)
	for k, v := range out {
		out[k] = slices.Clone(v)
	}
	return out, nil
}

func (c *Client) loadCapa() error {
	const cmd = "CAPA"
	_, err := c.cmd(cmd, cmd)
	if _, ok := err.(*Error); ok {
		c.caps = Caps{}
		return nil
	}
	if err != nil {
		return err
	}
	caps := Caps{}
	err = c.multiLine(cmd, maxCapaLines, func(line string) error {
		if name, args := parseCapaLine(line); name != "" {
			caps[name] = args
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.caps = caps
	return nil
}
