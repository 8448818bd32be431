/*
 * spandsp-dtmf: run SpanDSP's DTMF receiver over raw audio.
 *
 * Input (stdin): signed 16-bit little-endian mono PCM at 8000 Hz.
 * Output (stdout): one line per digit, "<digit> <sample_index>".
 *
 * The receiver is SpanDSP's dtmf_rx with its default settings (dtmf_rx_init,
 * no dtmf_rx_parms call): Q.24 thresholds as compiled into the library,
 * dial-tone filter off. Digits come from the real-time callback, which
 * fires once when SpanDSP confirms a digit (two agreeing 102-sample blocks)
 * and once when it ends. Samples are fed one at a time so that the sample
 * index of each callback is exact: <sample_index> is the number of samples
 * consumed when SpanDSP confirmed the digit, i.e. the detection time, which
 * lies up to about 2 x 102 samples after the tone's first sample.
 *
 * Build:
 *   cc -O2 -o bin/spandsp-dtmf test/tools/spandsp-dtmf/main.c \
 *      $(pkg-config --cflags --libs spandsp)
 *
 * Exit status: 0 on success (whether or not digits were found), 1 on a
 * read or initialisation error, 2 on bad usage.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spandsp.h>

static int64_t consumed;	/* samples fed to dtmf_rx so far */

static void on_tone(void *user_data, int code, int level, int delay)
{
	(void) user_data;
	(void) level;
	(void) delay;
	if (code == 0)
		return;		/* end of a digit */
	printf("%c %" PRId64 "\n", (char) code, consumed);
}

static int is_little_endian(void)
{
	const uint16_t probe = 1;
	return *(const uint8_t *) &probe == 1;
}

int main(int argc, char **argv)
{
	dtmf_rx_state_t *rx;
	uint8_t buf[2 * 4096];
	size_t n;
	size_t carry = 0;
	int le = is_little_endian();

	if (argc > 1) {
		if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
			fprintf(stdout, "usage: %s < audio.s16le\n"
				"  stdin: signed 16-bit little-endian mono 8000 Hz raw PCM\n"
				"  stdout: one line per digit: <digit> <sample_index>\n", argv[0]);
			return 0;
		}
		fprintf(stderr, "usage: %s < audio.s16le\n", argv[0]);
		return 2;
	}

	rx = dtmf_rx_init(NULL, NULL, NULL);
	if (rx == NULL) {
		fprintf(stderr, "spandsp-dtmf: dtmf_rx_init failed\n");
		return 1;
	}
	dtmf_rx_set_realtime_callback(rx, on_tone, NULL);

	while ((n = fread(buf + carry, 1, sizeof(buf) - carry, stdin)) > 0) {
		size_t total = carry + n;
		size_t i;

		for (i = 0; i + 1 < total; i += 2) {
			int16_t s;

			if (le)
				memcpy(&s, buf + i, 2);
			else
				s = (int16_t) (uint16_t) (buf[i] | (buf[i + 1] << 8));
			/* One sample per call: the callback then knows the exact
			 * position. dtmf_rx keeps its block state across calls. */
			dtmf_rx(rx, &s, 1);
			consumed++;
		}
		carry = total - i;
		if (carry)
			buf[0] = buf[i];
	}
	if (ferror(stdin)) {
		perror("spandsp-dtmf: read");
		dtmf_rx_free(rx);
		return 1;
	}
	if (carry)
		fprintf(stderr, "spandsp-dtmf: ignoring trailing odd byte\n");
	dtmf_rx_free(rx);
	if (fflush(stdout) != 0) {
		perror("spandsp-dtmf: write");
		return 1;
	}
	return 0;
}
