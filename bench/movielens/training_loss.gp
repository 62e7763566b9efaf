set terminal pngcairo size 900,560 font 'sans,11'
set output 'training_loss.png'
set title 'MovieLens: LRS training loss (mean squared residual) per outer iteration'
set xlabel 'outer iteration'
set ylabel 'training MSE'
set grid
set key below horizontal
plot 'training_loss.dat' index 0 using 1:2 with linespoints lw 2 title '5 ratings', 'training_loss.dat' index 1 using 1:2 with linespoints lw 2 title '10 ratings', 'training_loss.dat' index 2 using 1:2 with linespoints lw 2 title '20 ratings', 'training_loss.dat' index 3 using 1:2 with linespoints lw 2 title 'all ratings'
