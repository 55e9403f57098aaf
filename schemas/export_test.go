package schemas

// MigrateSome applies only the migrations whose version want accepts: the
// schema an older release left, for upgrade tests.
var MigrateSome = migrate
