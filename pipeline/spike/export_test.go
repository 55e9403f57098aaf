package spike

import "testing"

// For the external tests (rules_test.go): the Comcast complaints, and a
// hook through which they hand back the settings of the built-in spike
// rule, which only the rules package, an importer of this one, can read.

// LoadComcast is spikeLoadComcast.
var LoadComcast = spikeLoadComcast

// BuiltinConfig returns the detector settings of the complaint_spike rule
// of rules.default.yaml; rules_test.go sets it.
var BuiltinConfig func(testing.TB) Config
