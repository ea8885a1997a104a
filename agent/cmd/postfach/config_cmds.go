package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/configs"
)

func newInitCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented starter config file",
		Long: `Write a commented starter config to the --config path (default
$XDG_CONFIG_HOME/postfach/config.toml). Edit it, then run "postfach config check".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := os.Stat(g.configPath); err == nil && !force {
				return fmt.Errorf("%s already exists (use --force to overwrite)", g.configPath)
			}
			if err := os.MkdirAll(filepath.Dir(g.configPath), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(g.configPath, configs.Example, 0o600); err != nil {
				return err
			}
			check := "postfach config check"
			if g.configPath != configs.DefaultPath() {
				check = "postfach --config " + g.configPath + " config check"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\nedit it, then run: %s\n", g.configPath, check)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the config file",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the config file and print every error with file:line and key",
		Long: `Validate the config file: every error with file:line and key, and
warnings (file:line: key: warning: ...) about what may not do what you
expect, such as folder_map targets that can put two server folders into
one local folder, or a password in a file others can read; warnings do
not fail the check. Then try what the file refers to: each ca_file must
hold a PEM certificate, each password_env must be set. Then check
the store on disk without changing it: a store inside another postfach
store, another store inside an account's folder, or an account folder
holding mail postfach did not store (another program's Maildir) is
refused here as by every run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g.allWarnings = true
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if errs := cfg.CheckEnvironment(); len(errs) > 0 {
				for _, e := range errs {
					fmt.Fprintln(cmd.ErrOrStderr(), safe(e.Error()))
				}
				return exitError{2}
			}
			if err := agent.CheckStore(cfg); err != nil {
				return err
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), safe(w.Error()))
			}
			warnings := ""
			if n := len(cfg.Warnings); n > 0 {
				warnings = fmt.Sprintf(", %d %s", n, plural(n, "warning", "warnings"))
			}
			n := len(cfg.Accounts)
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d %s, store %s%s)\n", cfg.File, n, plural(n, "account", "accounts"), cfg.Store.Path, warnings)
			return nil
		},
	})
	return cmd
}
