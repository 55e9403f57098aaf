package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/cockpit-cs/cockpit/internal/config"
	"github.com/cockpit-cs/cockpit/internal/memlimit"
)

// Version is set at build time with -ldflags "-X ...app.Version=v1.2.3".
var Version = "dev"

const usage = `cockpit — real-time analytics cockpit for customer-service centres

Usage:
  cockpit demo      everything embedded: Kafka, ClickHouse, ingest, API, simulator
  cockpit serve     run against real Kafka and ClickHouse (config file, COCKPIT_* env, flags)
  cockpit store     run the embedded ClickHouse HTTP endpoint as its own process
  cockpit migrate   apply the ClickHouse schema and exit
  cockpit simulate  produce simulated conversation events to Kafka
  cockpit version   print the version

Run "cockpit <command> -h" for the flags of a command.
`

// Main runs the command named by args[0] and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	if cmd == "serve" || cmd == "demo" || cmd == "store" {
		memlimit.Apply()
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(ctx, rest, stderr)
	case "demo":
		err = cmdDemo(ctx, rest, stderr)
	case "store":
		err = cmdStore(ctx, rest, stderr)
	case "migrate":
		err = cmdMigrate(ctx, rest, stderr)
	case "simulate":
		err = cmdSimulate(ctx, rest, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "cockpit", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cockpit: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "cockpit %s: %v\n", cmd, err)
		return 1
	}
}

var errUsage = errors.New("usage")

func versionString() string {
	v := Version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + info.GoVersion
	}
	return v
}

// common holds the flags every long-running command shares.
type common struct {
	configPath string
	logLevel   string
	logFormat  string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.configPath, "config", os.Getenv("COCKPIT_CONFIG"), "YAML config file (env COCKPIT_CONFIG)")
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error (default info)")
	fs.StringVar(&c.logFormat, "log-format", "", "text or json (default text)")
}

// load reads the config file and environment, then lets set (the command's
// own flags) override them.
func (c *common) load(set func(*config.Config)) (config.Config, error) {
	cfg, err := config.Load(c.configPath, os.Environ())
	if err != nil {
		return cfg, err
	}
	if c.logLevel != "" {
		cfg.Log.Level = c.logLevel
	}
	if c.logFormat != "" {
		cfg.Log.Format = c.logFormat
	}
	if set != nil {
		set(&cfg)
	}
	return cfg, nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cockpit "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var c common
	c.register(fs)
	httpAddr := fs.String("http", "", "HTTP listen address (http.listen)")
	brokers := fs.String("brokers", "", "Kafka brokers, comma separated (ingest.brokers)")
	dsn := fs.String("clickhouse", "", "ClickHouse DSN (clickhouse.dsn)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(func(cfg *config.Config) {
		if *httpAddr != "" {
			cfg.HTTP.Listen = *httpAddr
		}
		if *brokers != "" {
			cfg.Ingest.Brokers = splitList(*brokers)
		}
		if *dsn != "" {
			cfg.ClickHouse.DSN = *dsn
		}
	})
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	p, err := newProduct(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return p.run(ctx)
}

func cmdMigrate(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	var c common
	c.register(fs)
	dsn := fs.String("clickhouse", "", "ClickHouse DSN (clickhouse.dsn)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(func(cfg *config.Config) {
		if *dsn != "" {
			cfg.ClickHouse.DSN = *dsn
		}
	})
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	if err := cfg.ClickHouse.StoreConfig.Validate(); err != nil {
		return err
	}
	if err := migrate(ctx, cfg.ClickHouse, logger); err != nil {
		return err
	}
	logger.Info("schema is up to date", "database", cfg.ClickHouse.Database)
	return nil
}
