set terminal pngcairo size 900,560 font 'sans,11'
set output 'rmse_vs_ratings.png'
set title 'MovieLens: test RMSE against training ratings per user'
set xlabel 'training ratings per user (log scale; rightmost: all, mean 119)'
set ylabel 'test RMSE'
set logscale x
set xrange [4:155]
set key outside right
set grid
plot for [c=2:12] 'rmse_vs_ratings.dat' using 1:c with linespoints lw 2 title columnheader(c)
