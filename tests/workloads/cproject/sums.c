#include <ctype.h>
#include "counter.h"

long sum_digits(const char *text)
{
	long s = 0;
	for (; *text; text++)
		if (isdigit((unsigned char)*text))
			s += *text - '0';
	return s;
}
