package routes

import "errors"

// ErrRouteConflict means a route another program owns covers a pod CIDR
// the Manager wants to route; the Manager leaves it alone.
var ErrRouteConflict = errors.New("a route not owned by capstan already covers this pod CIDR")
