package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/regions"
)

// tokenCmd prints a development token signed with the configured HS256 secret.
func tokenCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("dmsrouter", "token", stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file")
	sub := fs.String("sub", "", "subject (user id)")
	role := fs.String("role", "", "role: "+strings.Join(auth.Roles(), ", "))
	territory := fs.String("territory", "", "territory: national, region:03, province:015, comune:015146 or market:<id>")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := cli.ParseArgs(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return err
	}
	if cfg.Auth.HS256Secret == "" {
		return errors.New("auth.hs256_secret is not set: development tokens need it")
	}
	if *sub == "" {
		return errors.New("--sub is required")
	}
	if !slices.Contains(auth.Roles(), *role) {
		return fmt.Errorf("--role %q: want one of %s", *role, strings.Join(auth.Roles(), ", "))
	}
	if *territory == "" {
		return errors.New("--territory is required (national, region:NN, province:NNN, comune:NNNNNN, market:ID)")
	}
	t, err := regions.ParseTerritory(*territory)
	if err != nil {
		return fmt.Errorf("--territory: %w", err)
	}
	if *ttl <= 0 {
		return errors.New("--ttl must be positive")
	}
	tok, err := auth.SignHS256(cfg.Auth.HS256Secret, auth.Principal{Subject: *sub, Role: *role, Territory: t}, *ttl, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
