#include <stdio.h>
#include "counter.h"

int main(int argc, char **argv)
{
	const char *text = argc > 1 ? argv[1] : "one 2 three 4";
	printf("%d words, digits sum to %ld\n", count_words(text), sum_digits(text));
	return 0;
}
