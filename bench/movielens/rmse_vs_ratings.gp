set terminal pngcairo size 900,700 font 'sans,11'
set output 'rmse_vs_ratings.png'
set linetype 1 lc rgb '#000000' lw 2 pt 1 dt 1
set linetype 2 lc rgb '#e69f00' lw 2 pt 2 dt 1
set linetype 3 lc rgb '#56b4e9' lw 2 pt 3 dt 1
set linetype 4 lc rgb '#009e73' lw 2 pt 4 dt 1
set linetype 5 lc rgb '#d55e00' lw 2 pt 5 dt 1
set linetype 6 lc rgb '#0072b2' lw 2 pt 6 dt 1
set linetype 7 lc rgb '#cc79a7' lw 2 pt 7 dt 2
set linetype 8 lc rgb '#7f7f7f' lw 2 pt 8 dt 2
set linetype 9 lc rgb '#b8860b' lw 2 pt 9 dt 2
set linetype 10 lc rgb '#8b0000' lw 2 pt 10 dt 2
set linetype 11 lc rgb '#2e8b57' lw 2 pt 11 dt 2
set linetype 12 lc rgb '#4b0082' lw 2 pt 12 dt 2
set linetype 13 lc rgb '#ff1493' lw 2 pt 13 dt 3
set linetype 14 lc rgb '#000000' lw 2 pt 1 dt 3
set title "MovieLens: test RMSE behind the best method of each column\n(lines off the top are further behind: table.md has every number)"
set xlabel 'training ratings per user (log scale; rightmost: all, mean 119)'
set ylabel 'test RMSE minus the best of each column'
set logscale x
set xrange [4:155]
set yrange [-0.002:0.05]
set key below maxrows 4 width -4
set grid
plot for [c=16:29] 'rmse_vs_ratings.dat' using 1:c with linespoints title columnheader(c)
