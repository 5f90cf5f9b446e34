package migrations

import (
	"context"

	"github.com/pressly/goose/v3"
)

// UpTo applies the migrations up to version to the database at dsn, so that
// a test can put rows into an older schema and then migrate them.
func UpTo(ctx context.Context, dsn string, version int64) error {
	return withProvider(ctx, regional, dsn, func(p *goose.Provider) error {
		_, err := p.UpTo(ctx, version)
		return err
	})
}

// DownTo rolls the database at dsn back to version, so that a test can
// check a migration's Down section.
func DownTo(ctx context.Context, dsn string, version int64) error {
	return withProvider(ctx, regional, dsn, func(p *goose.Provider) error {
		_, err := p.DownTo(ctx, version)
		return err
	})
}
