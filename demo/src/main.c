#include <stdio.h>
#include "greet.h"

int main(void)
{
	const char *g = greeting();
	printf("%s (%d words)\n", g, count_words(g));
	return 0;
}
