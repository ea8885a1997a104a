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
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\nedit it, then run: postfach --config %s config check\n", g.configPath, g.configPath)
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
		Long: `Validate the config file: every error with file:line and key. Then check
the store on disk without changing it: a store inside another postfach
store, another store inside an account's folder, or an account folder
holding mail postfach did not store (another program's Maildir) is
refused here as by every run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if err := agent.CheckStore(cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d accounts, store %s)\n", cfg.File, len(cfg.Accounts), cfg.Store.Path)
			return nil
		},
	})
	return cmd
}
