package chstore

import (
	"context"
	"io"
	"math/big"
	"net"
	"reflect"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"
	"github.com/paulmach/orb"
	"github.com/shopspring/decimal"

	"github.com/cockpit-cs/cockpit/internal/chdb"
)

// TestMoreTypes checks the re-encoding of types beyond the project's own,
// read by clickhouse-go.
func TestMoreTypes(t *testing.T) {
	conn := open(t, nil)
	var (
		m     map[string]uint64
		nest  [][]uint8
		tup   []any
		nullS *string
		lcArr []string
		dec   decimal.Decimal
		id    uuid.UUID
		enum  string
		ip    net.IP
		fixed string
		i128  big.Int
		nArr  []*int32
		point orb.Point
	)
	err := conn.QueryRow(context.Background(), `
		SELECT map('a', toUInt64(1), 'b', 2), [[1, 2], [], [3]], tuple(7, 'x'), CAST(NULL AS Nullable(String)),
		       [toLowCardinality('p'), toLowCardinality('q')], toDecimal64(12.345, 3),
		       toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0'), CAST('b' AS Enum8('a' = 1, 'b' = 2)),
		       toIPv4('10.1.2.3'), toFixedString('ab', 4), toInt128('-170141183460469231731687303715884105728'),
		       [1, NULL, 3]::Array(Nullable(Int32)), (1.5, 2.5)::Point`).
		Scan(&m, &nest, &tup, &nullS, &lcArr, &dec, &id, &enum, &ip, &fixed, &i128, &nArr, &point)
	if err != nil {
		t.Fatal(err)
	}
	three := int32(3)
	one := int32(1)
	minI128, _ := new(big.Int).SetString("-170141183460469231731687303715884105728", 10)
	switch {
	case !reflect.DeepEqual(m, map[string]uint64{"a": 1, "b": 2}):
		t.Errorf("map %v", m)
	case !reflect.DeepEqual(nest, [][]uint8{{1, 2}, {}, {3}}):
		t.Errorf("nested %v", nest)
	case len(tup) != 2 || tup[1] != "x":
		t.Errorf("tuple %v", tup)
	case nullS != nil:
		t.Errorf("null %v", *nullS)
	case !reflect.DeepEqual(lcArr, []string{"p", "q"}):
		t.Errorf("lc array %v", lcArr)
	case dec.String() != "12.345":
		t.Errorf("decimal %v", dec)
	case id.String() != "61f0c404-5cb3-11e7-907b-a6006ad3dba0":
		t.Errorf("uuid %v", id)
	case enum != "b":
		t.Errorf("enum %v", enum)
	case ip.String() != "10.1.2.3":
		t.Errorf("ip %v", ip)
	case fixed != "ab\x00\x00":
		t.Errorf("fixed %q", fixed)
	case i128.Cmp(minI128) != 0:
		t.Errorf("int128 %v", &i128)
	case !reflect.DeepEqual(nArr, []*int32{&one, nil, &three}):
		t.Errorf("nullable array %v", nArr)
	case point != orb.Point{1.5, 2.5}:
		t.Errorf("point %v", point)
	}
}

// TestTranscodeMatchesEngine compares transcode with ch-go's own block
// encoder on what the engine returns.
func TestTranscodeMatchesEngine(t *testing.T) {
	res, err := testEngine.Query(context.Background(),
		[]byte("SELECT number AS n, toString(number) AS s FROM numbers(5) SETTINGS max_block_size = 2"), "Native", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got proto.Buffer
	if err := transcode(&got, res.Data, 54460); err != nil {
		t.Fatal(err)
	}
	var want proto.Buffer
	r := proto.NewReader(bytesReader(res.Data))
	for {
		var b proto.Block
		var results proto.Results
		if err := b.DecodeRawBlock(r, 0, results.Auto()); err != nil {
			break
		}
		// Re-encode at the client's revision with ch-go; a server sends
		// bucket_num -1, as transcode does.
		b.Info.BucketNum = -1
		input := make(proto.Input, len(results))
		for i, c := range results {
			input[i] = proto.InputColumn{Name: c.Name, Data: c.Data.(proto.ColInput)}
		}
		if err := b.EncodeBlock(&want, 54460, input); err != nil {
			t.Fatal(err)
		}
	}
	if len(want.Buf) == 0 || !reflect.DeepEqual(got.Buf, want.Buf) {
		t.Fatalf("transcode differs from ch-go:\n got %x\nwant %x", got.Buf, want.Buf)
	}
}

func FuzzTranscode(f *testing.F) {
	res, err := testEngine.Do(context.Background(), chdb.Statement{
		Query:  []byte("SELECT 1 AS a, 'x' AS b, [1] AS c, map('k', 'v') AS d, toLowCardinality('z') AS e, CAST(NULL AS Nullable(UInt8)) AS f"),
		Format: "Native",
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(res.Data)
	f.Add([]byte{1, 1, 1, 'a', 6, 'S', 't', 'r', 'i', 'n', 'g', 200})
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf proto.Buffer
		_ = transcode(&buf, data, 54460) // must not panic or hang
	})
}

func bytesReader(b []byte) *bytesReaderT { return &bytesReaderT{b: b} }

type bytesReaderT struct{ b []byte }

func (r *bytesReaderT) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
