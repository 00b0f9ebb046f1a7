/* quickstart.c -- the README's C example: Adam on f(x,y) = x^2/20 + y^2 from (-7, 2). */
#include <stdio.h>
#include <descent.h>

int main(void) {
    descent_optimizer *opt;
    if (descent_optimizer_create("adam", "lr=0.3", &opt) != DESCENT_OK) {
        fprintf(stderr, "%s\n", descent_last_error());
        return 1;
    }
    float xy[2] = {-7.0f, 2.0f}, grad[2];           /* minimise f = x^2/20 + y^2 */
    float *params[1] = {xy};
    const float *grads[1] = {grad};
    int64_t lengths[1] = {2};
    for (int t = 1; t <= 30; t++) {
        grad[0] = xy[0] / 10.0f;
        grad[1] = 2.0f * xy[1];
        if (descent_optimizer_step(opt, 1, params, grads, lengths) != DESCENT_OK) {
            fprintf(stderr, "%s\n", descent_last_error());
            break;
        }
    }
    printf("after 30 steps: (%g, %g)\n", xy[0], xy[1]);
    descent_optimizer_free(opt);
    return 0;
}
