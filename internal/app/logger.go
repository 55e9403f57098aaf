package app

import (
	"io"
	"log/slog"

	"github.com/cockpit-cs/cockpit/internal/config"
)

// newLogger returns the logger cfg.Log asks for, and logs on it what
// cfg.Notices has to say about the settings.
func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	level, err := config.ParseLevel(cfg.Log.Level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	if cfg.Log.Format == "json" {
		logger = slog.New(slog.NewJSONHandler(w, opts))
	} else {
		logger = slog.New(slog.NewTextHandler(w, opts))
	}
	for _, n := range cfg.Notices() {
		logger.Warn(n)
	}
	return logger, nil
}
