package chstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ClickHouse/ch-go/proto"
)

// revisionCustomSerialization is the first protocol revision whose Native
// blocks carry a "has custom serialization" byte after each column's type.
const revisionCustomSerialization = 54454

// maxNesting bounds type recursion, so a hostile type string cannot exhaust
// the stack.
const maxNesting = 64

// transcode rewrites a revision-0 Native stream (what the engine writes) for
// a client decoding at revision rev: each block gains the block info header
// and, from revisionCustomSerialization on, a zero "no custom serialization"
// byte per column.
//
// Column data is copied byte for byte: the type is only used to measure how
// long the column's data is. Decoding into ch-go columns and encoding again
// would cost allocations per value and only works for the types ch-go can
// infer (not Tuple, Map(String, UInt64), ...); measuring covers every type
// whose Native layout does not depend on per-value state.
func transcode(dst *proto.Buffer, src []byte, rev int) error {
	if rev <= 0 {
		dst.PutRaw(src)
		return nil
	}
	c := &cursor{b: src}
	for c.i < len(c.b) {
		cols, err := c.uvarint()
		if err != nil {
			return fmt.Errorf("block header: %w", err)
		}
		rows, err := c.uvarint()
		if err != nil {
			return fmt.Errorf("block header: %w", err)
		}
		if rows > 1<<40 || cols > 1<<20 {
			return fmt.Errorf("implausible block of %d columns and %d rows", cols, rows)
		}
		info := proto.BlockInfo{BucketNum: -1}
		info.Encode(dst)
		dst.PutUVarInt(cols)
		dst.PutUVarInt(rows)
		for i := uint64(0); i < cols; i++ {
			name, err := c.str()
			if err != nil {
				return fmt.Errorf("column %d name: %w", i, err)
			}
			typ, err := c.str()
			if err != nil {
				return fmt.Errorf("column %q type: %w", name, err)
			}
			dst.PutString(name)
			dst.PutString(typ)
			if rev >= revisionCustomSerialization {
				dst.PutBool(false)
			}
			start := c.i
			// Native writes neither state prefix nor data for an empty block.
			if rows > 0 {
				if err := skipPrefix(c, typ, 0); err != nil {
					return fmt.Errorf("column %q %s: %w", name, typ, err)
				}
				if err := skipData(c, typ, rows, 0); err != nil {
					return fmt.Errorf("column %q %s: %w", name, typ, err)
				}
			}
			dst.PutRaw(c.b[start:c.i])
		}
	}
	return nil
}

var errShort = errors.New("truncated Native data")

// cursor reads a byte slice.
type cursor struct {
	b []byte
	i int
}

func (c *cursor) uvarint() (uint64, error) {
	v, n := binary.Uvarint(c.b[c.i:])
	if n <= 0 {
		return 0, errShort
	}
	c.i += n
	return v, nil
}

func (c *cursor) u64() (uint64, error) {
	if len(c.b)-c.i < 8 {
		return 0, errShort
	}
	v := binary.LittleEndian.Uint64(c.b[c.i:])
	c.i += 8
	return v, nil
}

func (c *cursor) skip(n uint64) error {
	if n > uint64(len(c.b)-c.i) {
		return errShort
	}
	c.i += int(n)
	return nil
}

func (c *cursor) str() (string, error) {
	n, err := c.uvarint()
	if err != nil {
		return "", err
	}
	start := c.i
	if err := c.skip(n); err != nil {
		return "", err
	}
	return string(c.b[start:c.i]), nil
}

// fixedWidth is the per-row size of types with a fixed-size encoding.
var fixedWidth = map[string]uint64{
	"UInt8": 1, "Int8": 1, "Bool": 1, "Enum8": 1, "Nothing": 1,
	"UInt16": 2, "Int16": 2, "Date": 2, "Enum16": 2, "BFloat16": 2,
	"UInt32": 4, "Int32": 4, "Float32": 4, "Date32": 4, "DateTime": 4, "IPv4": 4, "Decimal32": 4, "Time": 4,
	"UInt64": 8, "Int64": 8, "Float64": 8, "DateTime64": 8, "Decimal64": 8, "Time64": 8,
	"UInt128": 16, "Int128": 16, "UUID": 16, "IPv6": 16, "Decimal128": 16,
	"UInt256": 32, "Int256": 32, "Decimal256": 32,
}

// geoAliases are the geo types, which are stored as their definitions.
var geoAliases = map[string]string{
	"Point":           "Tuple(Float64, Float64)",
	"Ring":            "Array(Point)",
	"LineString":      "Array(Point)",
	"Polygon":         "Array(Ring)",
	"MultiLineString": "Array(LineString)",
	"MultiPolygon":    "Array(Polygon)",
}

// splitType splits "Name(args)" into Name and its top-level arguments.
func splitType(t string) (string, []string, error) {
	t = strings.TrimSpace(t)
	open := strings.IndexByte(t, '(')
	if open < 0 {
		return t, nil, nil
	}
	if !strings.HasSuffix(t, ")") {
		return "", nil, fmt.Errorf("malformed type %q", t)
	}
	name, inner := t[:open], t[open+1:len(t)-1]
	var args []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(inner); i++ {
		ch := inner[i]
		switch {
		case quote != 0:
			if ch == '\\' {
				i++
			} else if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '`' || ch == '"':
			quote = ch
		case ch == '(':
			depth++
		case ch == ')':
			depth--
		case ch == ',' && depth == 0:
			args = append(args, strings.TrimSpace(inner[start:i]))
			start = i + 1
		}
	}
	return name, append(args, strings.TrimSpace(inner[start:])), nil
}

// elementType strips the name from a named Tuple element ("a UInt8").
func elementType(arg string) string {
	depth := 0
	var quote byte
	for i := 0; i < len(arg); i++ {
		ch := arg[i]
		switch {
		case quote != 0:
			if ch == '\\' {
				i++
			} else if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '`' || ch == '"':
			quote = ch
		case ch == '(':
			depth++
		case ch == ')':
			depth--
		case ch == ' ' && depth == 0:
			return strings.TrimSpace(arg[i+1:])
		}
	}
	return arg
}

// decimalWidth sizes Decimal(P, S) by its precision.
func decimalWidth(args []string) (uint64, error) {
	if len(args) == 0 {
		return 0, errors.New("decimal without precision")
	}
	p, err := strconv.Atoi(args[0])
	switch {
	case err != nil:
		return 0, fmt.Errorf("decimal precision %q", args[0])
	case p <= 9:
		return 4, nil
	case p <= 18:
		return 8, nil
	case p <= 38:
		return 16, nil
	default:
		return 32, nil
	}
}

// skipPrefix skips the serialization state prefix of a column of type t.
// Only LowCardinality has one (its key version); containers carry their
// elements' prefixes.
func skipPrefix(c *cursor, t string, depth int) error {
	if depth > maxNesting {
		return errors.New("type nested too deeply")
	}
	name, args, err := splitType(t)
	if err != nil {
		return err
	}
	if alias, ok := geoAliases[name]; ok {
		return skipPrefix(c, alias, depth+1)
	}
	switch name {
	case "LowCardinality":
		_, err := c.u64()
		return err
	case "Nullable", "Array":
		if len(args) != 1 {
			return fmt.Errorf("malformed type %q", t)
		}
		return skipPrefix(c, args[0], depth+1)
	case "SimpleAggregateFunction":
		if len(args) != 2 {
			return fmt.Errorf("malformed type %q", t)
		}
		return skipPrefix(c, args[1], depth+1)
	case "Map", "Tuple":
		for _, a := range args {
			if err := skipPrefix(c, elementType(a), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// Bits of the LowCardinality index-type word.
const (
	lcIndexWidthMask     = 0xff
	lcNeedGlobalDict     = 1 << 8
	lcHasAdditionalKeys  = 1 << 9
	lcMaxIndexWidthShift = 3
)

// skipData skips rows values of type t.
func skipData(c *cursor, t string, rows uint64, depth int) error {
	if depth > maxNesting {
		return errors.New("type nested too deeply")
	}
	name, args, err := splitType(t)
	if err != nil {
		return err
	}
	if alias, ok := geoAliases[name]; ok {
		return skipData(c, alias, rows, depth+1)
	}
	if w, ok := fixedWidth[name]; ok {
		return c.skip(rows * w)
	}
	if strings.HasPrefix(name, "Interval") {
		return c.skip(rows * 8)
	}
	one := func() (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("malformed type %q", t)
		}
		return args[0], nil
	}
	switch name {
	case "String":
		for r := uint64(0); r < rows; r++ {
			n, err := c.uvarint()
			if err != nil {
				return err
			}
			if err := c.skip(n); err != nil {
				return err
			}
		}
		return nil
	case "FixedString":
		n, err := strconv.ParseUint(strings.Join(args, ""), 10, 32)
		if err != nil {
			return fmt.Errorf("malformed type %q", t)
		}
		return c.skip(rows * n)
	case "Decimal":
		w, err := decimalWidth(args)
		if err != nil {
			return err
		}
		return c.skip(rows * w)
	case "Nullable":
		inner, err := one()
		if err != nil {
			return err
		}
		if err := c.skip(rows); err != nil {
			return err
		}
		return skipData(c, inner, rows, depth+1)
	case "SimpleAggregateFunction":
		if len(args) != 2 {
			return fmt.Errorf("malformed type %q", t)
		}
		return skipData(c, args[1], rows, depth+1)
	case "Array", "Map":
		var elems []string
		if name == "Array" {
			inner, err := one()
			if err != nil {
				return err
			}
			elems = []string{inner}
		} else {
			if len(args) != 2 {
				return fmt.Errorf("malformed type %q", t)
			}
			elems = args
		}
		if rows == 0 {
			return nil
		}
		if err := c.skip((rows - 1) * 8); err != nil {
			return err
		}
		total, err := c.u64()
		if err != nil {
			return err
		}
		for _, e := range elems {
			if err := skipData(c, e, total, depth+1); err != nil {
				return err
			}
		}
		return nil
	case "Tuple":
		for _, a := range args {
			if err := skipData(c, elementType(a), rows, depth+1); err != nil {
				return err
			}
		}
		return nil
	case "LowCardinality":
		inner, err := one()
		if err != nil {
			return err
		}
		// The dictionary holds the non-nullable type: NULL is a key.
		dict := inner
		if n, a, _ := splitType(inner); n == "Nullable" && len(a) == 1 {
			dict = a[0]
		}
		for done := uint64(0); done < rows; {
			flags, err := c.u64()
			if err != nil {
				return err
			}
			if flags&lcNeedGlobalDict != 0 {
				return errors.New("LowCardinality with a global dictionary is not supported")
			}
			if flags&lcHasAdditionalKeys != 0 {
				keys, err := c.u64()
				if err != nil {
					return err
				}
				if err := skipData(c, dict, keys, depth+1); err != nil {
					return err
				}
			}
			n, err := c.u64()
			if err != nil {
				return err
			}
			width := flags & lcIndexWidthMask
			if width > lcMaxIndexWidthShift {
				return fmt.Errorf("LowCardinality index width code %d", width)
			}
			if n == 0 || n > rows-done {
				return fmt.Errorf("LowCardinality granule of %d rows with %d left", n, rows-done)
			}
			if err := c.skip(n << width); err != nil {
				return err
			}
			done += n
		}
		return nil
	}
	return fmt.Errorf("type %s is not supported over the HTTP interface of the embedded store", name)
}
