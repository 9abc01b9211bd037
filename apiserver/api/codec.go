package api

import (
	"bytes"
	"encoding/json"
	"fmt"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// decodeOptions make the decoder of encoding/json/v2 (the module it
// comes from, which needs no GOEXPERIMENT) read objects as encoding/json
// does, refusing unknown fields as Decoder.DisallowUnknownFields does. It
// decodes an object in less than half the time of encoding/json with a
// third of the allocations (docs/benchmarks.md), and every informer,
// watch and read-modify-write decodes objects. Encoding stays with
// encoding/json (faster there, and the stored bytes stay the same).
var decodeOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.RejectUnknownMembers(true))

// skewDecodeOptions are decodeOptions that drop unknown fields (see
// DecodeLenient).
var skewDecodeOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.RejectUnknownMembers(false))

// Decode parses the JSON of one object of kind k, refusing unknown fields
// and trailing data, and checks that its kind field matches.
func Decode(k Kind, data []byte) (Object, error) {
	return decode(k, data, decodeOptions)
}

// DecodeLenient is Decode for what a newer Capstan may have written
// (docs/cluster.md#upgrading): fields this binary does not know are
// dropped, as client-go and the Kubernetes API server drop them, instead
// of failing every read of an object a newer release gave a new field.
// Clients read what servers send with it (servers are upgraded before
// agents and CLIs), and the store what it holds (during a rolling upgrade
// of several servers on one etcd, the older ones read what the newer ones
// wrote). What a server reads from a request stays strict (Decode).
func DecodeLenient(k Kind, data []byte) (Object, error) {
	return decode(k, data, skewDecodeOptions)
}

func decode(k Kind, data []byte, opts jsonv2.Options) (Object, error) {
	obj := k.New()
	if obj == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, k)
	}
	if err := jsonv2.Unmarshal(data, obj, opts); err != nil {
		return nil, fmt.Errorf("%w: decode %s: %w", ErrInvalid, k.Singular(), err)
	}
	if obj.GetKind() == "" {
		obj.setKind(k.Singular())
	}
	if obj.GetKind() != k.Singular() {
		return nil, fmt.Errorf("%w: kind %q sent to the %s endpoint", ErrInvalid, obj.GetKind(), k)
	}
	return obj, nil
}

// DecodeAny parses an object whose kind is read from its kind field.
func DecodeAny(data []byte) (Object, error) {
	return decodeAny(data, decodeOptions)
}

// DecodeAnyLenient is DecodeAny dropping unknown fields (see
// DecodeLenient).
func DecodeAnyLenient(data []byte) (Object, error) {
	return decodeAny(data, skewDecodeOptions)
}

func decodeAny(data []byte, opts jsonv2.Options) (Object, error) {
	kind, ok := leadingKind(data)
	if !ok {
		var tm TypeMeta
		if err := json.Unmarshal(data, &tm); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		kind = tm.Kind
	}
	k, ok := KindOf(kind)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	return decode(k, data, opts)
}

// leadingKind reads the kind field of an object that begins with it, as
// every object this package encodes does, without reading the rest
// (Decode then reads it all, and checks that the kind it finds there is
// the same); ok is false for any other input, which DecodeAny then reads
// whole as encoding/json would.
func leadingKind(data []byte) (kind string, ok bool) {
	const space = " \t\r\n"
	rest := data
	for _, want := range []string{"{", `"kind"`, ":", `"`} {
		if rest, ok = bytes.CutPrefix(bytes.TrimLeft(rest, space), []byte(want)); !ok {
			return "", false
		}
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", false
	}
	return string(rest[:end]), true
}

// Clone returns a deep copy of obj.
func Clone[T Object](obj T) T {
	b, err := json.Marshal(obj)
	if err != nil {
		panic(fmt.Sprintf("api: marshal %T: %v", obj, err))
	}
	k, _ := KindOf(obj.GetKind())
	out := k.New()
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("api: unmarshal %T: %v", obj, err))
	}
	return out.(T)
}

// CopyStatus sets dst's status to src's; both must be of one kind. The API
// server uses it to keep the stored status on a spec update and the stored
// spec on a status update, without a round trip through JSON.
func CopyStatus(dst, src Object) {
	switch d := dst.(type) {
	case *Node:
		d.Status = src.(*Node).Status
	case *App:
		d.Status = src.(*App).Status
	case *Workload:
		d.Status = src.(*Workload).Status
	case *Pod:
		d.Status = src.(*Pod).Status
	case *Service:
		d.Status = src.(*Service).Status
	case *Job:
		d.Status = src.(*Job).Status
	case *PersistentVolume:
		d.Status = src.(*PersistentVolume).Status
	case *Lease, *Endpoints, *Revision, *Event, *Secret:
		// no status
	default:
		panic(fmt.Sprintf("api.CopyStatus: unknown kind %T", dst))
	}
}

// EqualJSON reports whether a and b encode to the same JSON: the equality
// of API values the controllers and agents use to skip writes that would
// change nothing (times compare by their encoding, nil and empty slices
// with omitempty alike). A value that cannot be encoded equals nothing.
func EqualJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
