package migrations

import (
	"context"

	"github.com/pressly/goose/v3"
)

// UpTo and DownTo migrate the database at dsn up or down to version, for
// the tests of a migration that changes data.
func UpTo(ctx context.Context, dsn string, version int64) error {
	return withProvider(ctx, dsn, func(p *goose.Provider) error {
		_, err := p.UpTo(ctx, version)
		return err
	})
}

func DownTo(ctx context.Context, dsn string, version int64) error {
	return withProvider(ctx, dsn, func(p *goose.Provider) error {
		_, err := p.DownTo(ctx, version)
		return err
	})
}
