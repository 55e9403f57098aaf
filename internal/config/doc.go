// Package config loads the settings of a cockpit process: a YAML file,
// then COCKPIT_* environment variables, then command-line flags, each
// overriding the one before. Unknown YAML keys are errors.
package config
