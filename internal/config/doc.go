// Package config loads the settings of a cockpit process: a YAML file,
// then COCKPIT_* environment variables, then command-line flags, each
// overriding the one before. Unknown YAML keys are errors; a retired key
// (alerting.delivery.poll) is accepted, has no effect and is named by
// Config.Notices.
//
// # One pattern for every configuration struct
//
// The configuration of each component (api.Config, ingest.Config,
// kpi.KPIConfig, kpi.RollupConfig, kpi.LiveConfig, alerts.DispatchConfig,
// alerts.DeliveryConfig, spike.Config, and Config here) has the same three
// functions:
//
//   - DefaultX() X (Default() where a package has one configuration)
//     returns the defaults.
//   - (c X) WithDefaults() X returns a copy of c whose zero-valued fields
//     hold their defaults: zero always means "the default". It does not
//     change c, nor anything c shares with the copy.
//   - (c X) Validate() error reports what cannot work in c as it is; it
//     neither fills defaults nor changes c. A partial configuration is
//     checked as c.WithDefaults().Validate(). (alerts.DeliveryConfig has
//     nothing to refuse and no Validate.)
//
// Constructors (api.New, ingest.New, kpi.NewKPIStore,
// kpi.NewRollupBuilder, alerts.NewDispatcher, alerts.NewDeliverer,
// spike.NewDetector) take a configuration as it is, apply WithDefaults and
// Validate themselves and build what they run with (compiled matchers, for
// instance) from the result, so no caller can hand them an unvalidated
// configuration.
//
// Durations are time.Duration, read by yaml.v3 and by the COCKPIT_*
// variables with time.ParseDuration; YAML that is also written back or
// needs line numbers in its errors (rule sets, routes) uses
// yamltime.Duration, the one duration type of its own.
package config
