package api

import (
	_ "embed"
	"strconv"
	"strings"
)

//go:embed currencies.txt
var currenciesTxt string

// currencies maps each accepted ISO 4217 alpha-3 code to its minor-unit
// exponent.
var currencies = func() map[string]int {
	m := map[string]int{}
	for _, line := range strings.Split(currenciesTxt, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		code, exp, ok := strings.Cut(line, " ")
		n, err := strconv.Atoi(exp)
		if !ok || err != nil || len(code) != 3 {
			panic("api: bad line in currencies.txt: " + line)
		}
		m[code] = n
	}
	return m
}()

// validCurrency reports whether code is an accepted, active ISO 4217
// alpha-3 code, upper case as the standard writes it.
func validCurrency(code string) bool {
	_, ok := currencies[code]
	return ok
}
